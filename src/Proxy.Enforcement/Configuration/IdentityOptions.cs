namespace QuotaProxy.Enforcement.Configuration;

public sealed record IdentityOptions
{
    public string ApiKeyHeader { get; init; } = "X-Api-Key";

    /// <summary>API keys, kept only as SHA-256 hex digests, each mapped to one tenant.</summary>
    public List<ApiKeyOptions> ApiKeys { get; init; } = [];

    public string TenantHeader { get; init; } = "X-Environment";

    /// <summary>The tenant header is believed only when this is true …</summary>
    public bool TrustTenantHeader { get; init; }

    /// <summary>… and, when this list is not empty, only from callers inside one of these networks (CIDR).</summary>
    public List<string> TrustedNetworks { get; init; } = [];
}
