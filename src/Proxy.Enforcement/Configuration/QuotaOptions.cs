namespace QuotaProxy.Enforcement.Configuration;

/// <summary>The <c>Quota</c> configuration section: who callers are, which pools they share, where counters live.</summary>
public sealed record QuotaOptions
{
    public const string SectionName = "Quota";

    /// <summary>Switches the quota step off; the proxy then forwards like plain YARP (used by the benchmark's baseline arm).</summary>
    public bool Enabled { get; init; } = true;

    public IdentityOptions Identity { get; init; } = new();

    public Dictionary<string, PoolOptions> Pools { get; init; } = new(StringComparer.Ordinal);

    public StoreOptions Store { get; init; } = new();

    public HeaderOptions Headers { get; init; } = new();

    public RequestOptions Requests { get; init; } = new();

    public LedgerOptions Ledger { get; init; } = new();

    public MetricsOptions Metrics { get; init; } = new();

    public AccessLogOptions AccessLog { get; init; } = new();

    public DecideOptions Decide { get; init; } = new();

    public NotificationOptions Notifications { get; init; } = new();

    public AdminOptions Admin { get; init; } = new();

    /// <summary>Per YARP cluster id: the vendor credential the proxy adds to every forwarded request.</summary>
    public Dictionary<string, UpstreamOptions> Upstreams { get; init; } = new(StringComparer.OrdinalIgnoreCase);
}
