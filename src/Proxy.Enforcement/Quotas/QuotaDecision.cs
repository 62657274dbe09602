namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// The store's answer to a <see cref="QuotaDebit"/>: admitted (and debited on every node from the tenant up
/// to the pool) or rejected (and debited nowhere), with the counters as they stand after the decision.
/// </summary>
/// <param name="LimitingNode">The node whose check failed (the root for the pool), or null.</param>
/// <param name="Used">The tenant node's usage this window, after the decision.</param>
/// <param name="PoolUsed">The pool's usage this window, after the decision.</param>
/// <param name="Limit">The tenant's effective limit: the smallest Limit on its path.</param>
/// <param name="Remaining">What this tenant could spend right now (its largest admissible cost).</param>
/// <param name="OverageCredits">Of an admitted cost, the credits above a Limit on the path (billed as overage).</param>
/// <param name="SoftLimitNode">The first node on the path (from the pool down) now above its SoftLimit, or null.</param>
/// <param name="SoftLimitCrossed">This decision is the one that crossed that SoftLimit.</param>
/// <param name="Shadow">Admitted only because every failing check was on a node in shadow mode.</param>
/// <param name="RetryAfterMicros">Limited by a rate or a closure: µs until a retry can succeed; else 0.</param>
/// <param name="Replayed">A retry with an idempotency key already charged in this window: admitted, charged nothing.</param>
internal readonly record struct QuotaDecision(
    bool Admitted,
    QuotaLimitedBy LimitedBy,
    QuotaNode? LimitingNode,
    long Used,
    long PoolUsed,
    long Limit,
    long Remaining,
    WindowBounds Window,
    long NowMs,
    long OverageCredits = 0,
    QuotaNode? SoftLimitNode = null,
    bool SoftLimitCrossed = false,
    bool Shadow = false,
    long RetryAfterMicros = 0,
    bool Replayed = false)
{
    /// <summary>Whole seconds until the window resets, at least 1.</summary>
    public long SecondsToReset => Math.Max(1, (Window.EndMs - NowMs + 999) / 1000);

    /// <summary>
    /// Whole seconds until a retry can succeed, at least 1: when the rate has room again or the closure ends,
    /// else when the window resets.
    /// </summary>
    public long SecondsToRetry => Admitted ? SecondsToReset : LimitedBy switch
    {
        QuotaLimitedBy.Rate or QuotaLimitedBy.Vendor => Math.Max(1, (RetryAfterMicros + 999_999) / 1_000_000),
        // A slot frees when some response ends: nobody knows when; try again shortly.
        QuotaLimitedBy.Concurrency => 1,
        _ => SecondsToReset,
    };
}
