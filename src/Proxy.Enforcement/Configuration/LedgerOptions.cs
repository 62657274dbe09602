namespace QuotaProxy.Enforcement.Configuration;

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
