namespace QuotaProxy.Enforcement.Configuration;

public sealed record ApiKeyOptions
{
    /// <summary>SHA-256 of the key as 64 hex characters (<c>printf %s "$KEY" | sha256sum</c>).</summary>
    public string Sha256 { get; init; } = "";

    public string Tenant { get; init; } = "";
}
