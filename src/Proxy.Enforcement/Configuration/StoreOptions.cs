namespace QuotaProxy.Enforcement.Configuration;

public sealed record StoreOptions
{
    public StoreKind Kind { get; init; } = StoreKind.InProcess;

    /// <summary>StackExchange.Redis configuration string, e.g. <c>localhost:6379</c> or a Sentinel/Cluster list.</summary>
    public string? Redis { get; init; }

    /// <summary>
    /// With <c>ssl=true</c> in <see cref="Redis"/>: a PEM file of the certificate authority that signed Redis's
    /// certificate (a private CA), trusted for this connection only. Unset: the machine's trust store decides.
    /// </summary>
    public string? TlsCaCertificate { get; init; }

    /// <summary>How long a decision may wait for the store before the outage policy answers.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Retry-After sent with the 503 while the store is unreachable.</summary>
    public TimeSpan RetryAfterWhenUnavailable { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a MaxInFlight lease lives if its response never ends (the proxy died): set it above the
    /// longest request you proxy.
    /// </summary>
    public TimeSpan LeaseTtl { get; init; } = Quotas.QuotaLease.DefaultTtl;

    /// <summary><c>Reject</c> (503 while the store is unreachable) or <c>AllowBounded</c> (each pool's <c>EmergencyAllowance</c>, journaled).</summary>
    public OutagePolicy OnUnavailable { get; init; } = OutagePolicy.Reject;

    /// <summary>With <c>AllowBounded</c>: the file where emergency admissions are journaled until the store has them.</summary>
    public string? JournalPath { get; init; }

    /// <summary>When the store keeps failing, stop waiting for it: see <see cref="BreakerOptions"/>.</summary>
    public BreakerOptions Breaker { get; init; } = new();

    /// <summary>
    /// Replicas that must hold an admitted debit before the request is forwarded (Redis <c>WAIT</c>), so that a
    /// failover never loses one the vendor has seen; 0 (default) forwards at once. With Sentinel and the ledger
    /// on, set it to 1: a debit whose acknowledgement does not come within the store timeout is answered 503
    /// and looked up on the new master by its usage event, and given back if it is there.
    /// </summary>
    public int ReplicaAcks { get; init; }

    /// <summary>Prefix of every Redis key; keep the default <c>qp:</c> unless several deployments share one Redis.</summary>
    public string KeyPrefix { get; init; } = "qp:";
}
