namespace QuotaProxy.Enforcement.Configuration;

public sealed record IdentityOptions
{
    public string ApiKeyHeader { get; init; } = "X-Api-Key";

    /// <summary>
    /// A server-side secret (set it through the environment, <c>Quota__Identity__KeyPepper</c>, never in the
    /// file): the API keys' digests are then HMAC-SHA-256 keyed by it, so a leaked config does not let anyone
    /// guess weak keys offline. Unset: plain SHA-256.
    /// </summary>
    public string? KeyPepper { get; init; }

    /// <summary>API keys, kept only as SHA-256 hex digests (HMAC-SHA-256 with a <see cref="KeyPepper"/>), each mapped to one tenant.</summary>
    public List<ApiKeyOptions> ApiKeys { get; init; } = [];

    public string TenantHeader { get; init; } = "X-Environment";

    /// <summary>The tenant header is believed only when this is true …</summary>
    public bool TrustTenantHeader { get; init; }

    /// <summary>… and only from callers inside one of these networks (CIDR), the socket's address deciding …</summary>
    public List<string> TrustedNetworks { get; init; } = [];

    /// <summary>… or from any network, when this says so explicitly (without it, an empty list stops the start).</summary>
    public bool AllowTenantHeaderFromAnyNetwork { get; init; }

    /// <summary>
    /// Proxies in front of this one whose <c>X-Forwarded-For</c> is believed (IP addresses): only then is the
    /// caller's address taken from that header (ASP.NET Core's forwarded headers, one hop) rather than the socket.
    /// </summary>
    public List<string> KnownProxies { get; init; } = [];

    /// <summary>As <see cref="KnownProxies"/>, by network (CIDR).</summary>
    public List<string> KnownNetworks { get; init; } = [];
}
