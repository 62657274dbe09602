namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// The admin API: off unless <see cref="Url"/> is set. Its keys (and their header) reload with the config
/// file, so a key is revoked without a restart; the URL is read once at start.
/// </summary>
public sealed record AdminOptions
{
    /// <summary>Where the admin API listens, such as <c>http://0.0.0.0:9090</c>: its own port, never the proxy's. Unset: no admin API.</summary>
    public string? Url { get; init; }

    public string KeyHeader { get; init; } = "X-Admin-Key";

    /// <summary>Admin keys, as SHA-256 hex digests, each with the name the audit trail records.</summary>
    public List<AdminKeyOptions> Keys { get; init; } = [];
}
