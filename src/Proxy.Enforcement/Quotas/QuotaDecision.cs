namespace QuotaProxy.Enforcement.Quotas;

/// <summary>One request's claim on a pool: <paramref name="Cost"/> credits for <paramref name="Tenant"/>.</summary>
public readonly record struct QuotaDebit(PoolDefinition Pool, TenantDefinition Tenant, long Cost);

/// <summary>What limited a rejected request.</summary>
public enum QuotaLimitedBy
{
    None = 0,
    Tenant = 1,
    Pool = 2,
}

/// <summary>
/// The store's answer to a <see cref="QuotaDebit"/>: admitted (and debited everywhere) or rejected (and
/// debited nowhere), with the counters as they stand after the decision and the window it fell in.
/// </summary>
public readonly record struct QuotaDecision(
    bool Admitted,
    QuotaLimitedBy LimitedBy,
    long PoolUsed,
    long TenantUsed,
    long PoolLimit,
    long TenantLimit,
    WindowBounds Window,
    long NowMs)
{
    /// <summary>What this tenant could spend right now: the smaller of its own and the pool's headroom.</summary>
    public long Remaining => Math.Max(0, Math.Min(TenantLimit - TenantUsed, PoolLimit - PoolUsed));

    /// <summary>Whole seconds until the window resets, at least 1.</summary>
    public long SecondsToReset => Math.Max(1, (Window.EndMs - NowMs + 999) / 1000);
}
