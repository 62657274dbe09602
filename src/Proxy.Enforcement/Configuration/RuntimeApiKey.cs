namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// An API key issued through the admin API: stored as its digest (<see cref="Identity.ApiKeyHash"/>), never
/// the key. <paramref name="Id"/> names it in the admin API; the key itself is shown once, when issued.
/// </summary>
internal sealed record RuntimeApiKey(string Id, string Digest, string Tenant, string? Name, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt)
{
    public bool IsLiveAt(DateTimeOffset now) => ExpiresAt is not { } expires || now < expires;
}
