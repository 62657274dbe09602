namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// <c>Quota:Decide</c>: <c>POST /quota/v1/decide</c> on the proxy's port, where a caller asks what a request
/// would get now without spending anything.
/// </summary>
public sealed record DecideOptions
{
    public bool Enabled { get; init; } = true;

    /// <summary>
    /// A pool each question is charged 1 credit in (the caller must be a tenant of it), so that asking is
    /// limited like any route; none: questions are free. Not a pool of the vendor's allowance: a question
    /// never reaches the vendor, and is recorded in no ledger.
    /// </summary>
    public string? Pool { get; init; }
}
