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

    public LedgerOptions Ledger { get; init; } = new();

    public MetricsOptions Metrics { get; init; } = new();

    public AdminOptions Admin { get; init; } = new();

    /// <summary>Per YARP cluster id: the vendor credential the proxy adds to every forwarded request.</summary>
    public Dictionary<string, UpstreamOptions> Upstreams { get; init; } = new(StringComparer.OrdinalIgnoreCase);
}

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

public sealed record ApiKeyOptions
{
    /// <summary>SHA-256 of the key as 64 hex characters (<c>printf %s "$KEY" | sha256sum</c>).</summary>
    public string Sha256 { get; init; } = "";

    public string Tenant { get; init; } = "";
}

public sealed record PoolOptions
{
    public long Limit { get; init; }

    public string Window { get; init; } = "";

    public string TimeZone { get; init; } = "UTC";

    /// <summary>Crossing it admits but warns (header, log once per window); unset means no warning.</summary>
    public long? SoftLimit { get; init; }

    /// <summary>A rate on this node, such as <c>10/s</c> or <c>600/m</c> (units s, m, h, d), checked by GCRA in the same decision.</summary>
    public string? Rate { get; init; }

    /// <summary>Credits the <see cref="Rate"/> lets through at once. Default 1: never more than the rate in any span of one unit.</summary>
    public long? Burst { get; init; }

    /// <summary>Requests of this node (with everything below it) that may be in flight at once; unset means no limit.</summary>
    public long? MaxInFlight { get; init; }

    /// <summary><c>Enforce</c> (default) or <c>Shadow</c>: decide and report, never reject. Tenants inherit it.</summary>
    public QuotaMode Mode { get; init; } = QuotaMode.Enforce;

    /// <summary>The top of the tenant tree; each tenant may hold its own <see cref="TenantOptions.Tenants"/>.</summary>
    public Dictionary<string, TenantOptions> Tenants { get; init; } = new(StringComparer.Ordinal);
}

/// <summary>One node of a pool's tenant tree (organisation, environment, team, user: any depth).</summary>
public sealed record TenantOptions
{
    /// <summary>Ceiling per window for this node with everything below it; unset means the parent's capacity.</summary>
    public long? Limit { get; init; }

    /// <summary>Its share: while unused, protected from tenants of lower priority. Default 0.</summary>
    public long? Allocation { get; init; }

    /// <summary>Its floor: while unused, protected from everyone. Default: the Allocation.</summary>
    public long? Guaranteed { get; init; }

    /// <summary>1 is the highest; unset is the lowest of all.</summary>
    public int? Priority { get; init; }

    /// <summary>Crossing it admits but warns (header, log once per window); unset means no warning.</summary>
    public long? SoftLimit { get; init; }

    /// <summary>Credits above Limit still admitted while the parent has room, marked as overage. Default 0.</summary>
    public long? Overage { get; init; }

    /// <summary>A rate on this node, such as <c>10/s</c> or <c>600/m</c> (units s, m, h, d), checked by GCRA in the same decision.</summary>
    public string? Rate { get; init; }

    /// <summary>Credits the <see cref="Rate"/> lets through at once. Default 1: never more than the rate in any span of one unit.</summary>
    public long? Burst { get; init; }

    /// <summary>Requests of this node (with everything below it) that may be in flight at once; unset means no limit.</summary>
    public long? MaxInFlight { get; init; }

    /// <summary>Unset inherits the parent's mode.</summary>
    public QuotaMode? Mode { get; init; }

    public Dictionary<string, TenantOptions> Tenants { get; init; } = new(StringComparer.Ordinal);
}

public enum QuotaMode
{
    /// <summary>Reject what the quota does not allow.</summary>
    Enforce,

    /// <summary>Decide, count and report would-be rejections, but forward anyway.</summary>
    Shadow,
}

public sealed record StoreOptions
{
    public StoreKind Kind { get; init; } = StoreKind.InProcess;

    /// <summary>StackExchange.Redis configuration string, e.g. <c>localhost:6379</c> or a Sentinel/Cluster list.</summary>
    public string? Redis { get; init; }

    /// <summary>How long a decision may wait for the store before the outage policy answers.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Retry-After sent with the 503 while the store is unreachable.</summary>
    public TimeSpan RetryAfterWhenUnavailable { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a MaxInFlight lease lives if its response never ends (the proxy died): set it above the
    /// longest request you proxy.
    /// </summary>
    public TimeSpan LeaseTtl { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Prefix of every Redis key; keep the default <c>qp:</c> unless several deployments share one Redis.</summary>
    public string KeyPrefix { get; init; } = "qp:";
}

public enum StoreKind
{
    InProcess,
    Redis,
}

public sealed record HeaderOptions
{
    /// <summary>Send <c>X-RateLimit-Limit/Remaining/Used/Reset</c> next to the IETF <c>RateLimit</c> pair.</summary>
    public bool Legacy { get; init; } = true;

    /// <summary>
    /// The header a client names a request with so that its retries are charged once per window
    /// (<c>Idempotency-Key</c>; set it to <c>X-Request-Id</c> to use request ids). Empty switches it off.
    /// </summary>
    public string IdempotencyKey { get; init; } = "Idempotency-Key";
}

public sealed record UpstreamOptions
{
    public UpstreamCredentialOptions? Credential { get; init; }
}

public sealed record UpstreamCredentialOptions
{
    public string Header { get; init; } = "";

    /// <summary>The secret itself (prefer <see cref="EnvironmentVariable"/> so it never sits in a file).</summary>
    public string? Value { get; init; }

    /// <summary>Name of an environment variable that holds the secret.</summary>
    public string? EnvironmentVariable { get; init; }
}

/// <summary>
/// The billing ledger in PostgreSQL. Off unless <see cref="ConnectionString"/> is set (it needs the Redis
/// store: usage events are appended by the debit script itself).
/// </summary>
public sealed record AdminOptions
{
    /// <summary>Where the admin API listens, such as <c>http://0.0.0.0:9090</c>: its own port, never the proxy's. Unset: no admin API.</summary>
    public string? Url { get; init; }

    public string KeyHeader { get; init; } = "X-Admin-Key";

    /// <summary>Admin keys, as SHA-256 hex digests, each with the name the audit trail records.</summary>
    public List<AdminKeyOptions> Keys { get; init; } = [];
}

public sealed record AdminKeyOptions
{
    public string Name { get; init; } = "";

    public string Sha256 { get; init; } = "";
}

public sealed record MetricsOptions
{
    /// <summary>How often every pool's and tenant's credits used are read from the store into the gauges, traffic or not.</summary>
    public TimeSpan UsageRefreshInterval { get; init; } = TimeSpan.FromSeconds(15);
}

public sealed record LedgerOptions
{
    /// <summary>Npgsql connection string, e.g. <c>Host=db;Username=quotaproxy;Password=…;Database=quotaproxy</c>.</summary>
    public string? ConnectionString { get; init; }

    public bool Enabled => !string.IsNullOrWhiteSpace(ConnectionString);

    /// <summary>
    /// The most events a pool's stream may hold while PostgreSQL is away (or slow). When it is full, metered
    /// requests get a 503 rather than an admission the ledger could not record.
    /// </summary>
    public long MaxBacklog { get; init; } = 1_000_000;

    /// <summary>Events per batch written to PostgreSQL.</summary>
    public int BatchSize { get; init; } = 2000;

    /// <summary>
    /// How long the flusher lets events gather once it has drained every stream (a pass that moved less
    /// than a full batch from each): the longest an event waits in Redis before its batch is read, under
    /// light load. Under heavy load batches fill first and are written back to back.
    /// </summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Events another replica was given and has not acknowledged for this long are taken over (it died).</summary>
    public TimeSpan ClaimIdle { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long the flusher waits after PostgreSQL or Redis failed before it tries again.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);
}
