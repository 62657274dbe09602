namespace QuotaProxy.Enforcement.Quotas;

/// <summary>One request's claim on a pool: <paramref name="Cost"/> credits for the tenant node <paramref name="Tenant"/>.</summary>
public readonly record struct QuotaDebit(PoolDefinition Pool, QuotaNode Tenant, long Cost);

/// <summary>What limited a rejected (or, in shadow mode, a would-be rejected) request.</summary>
public enum QuotaLimitedBy
{
    None = 0,

    /// <summary>A tenant node's <c>Limit</c> (plus its <c>Overage</c>) would be exceeded.</summary>
    Tenant = 1,

    /// <summary>The pool's <c>Limit</c> would be exceeded.</summary>
    Pool = 2,

    /// <summary>What is left is held for others: unused guarantees, or unused allocations of higher priority.</summary>
    Reserved = 3,

    /// <summary>A node's <c>Rate</c> has no room for the cost yet; <see cref="QuotaDecision.RetryAfterMicros"/> says when it will.</summary>
    Rate = 4,

    /// <summary>The vendor answered 429 and the pool is closed until its Retry-After (or the window's end).</summary>
    Vendor = 5,

    /// <summary>A node already has <c>MaxInFlight</c> requests in flight.</summary>
    Concurrency = 6,

    /// <summary>The ledger's backlog is full (PostgreSQL has been away too long): nothing is admitted that could not be billed.</summary>
    LedgerBacklog = 7,
}

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
public readonly record struct QuotaDecision(
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

/// <summary>
/// The store's answer for a route: one <see cref="QuotaDecision"/> per pool the route draws on, in the
/// route's order, each with that pool's own verdict. The route is admitted (and every pool debited) only
/// when every pool admits; otherwise nothing is debited anywhere.
/// </summary>
/// <param name="LimitingIndex">The first pool that rejected, or -1.</param>
/// <param name="Lease">When admitted and a node on a path has MaxInFlight: the lease to release when the response ends.</param>
public sealed record RouteDecision(bool Admitted, int LimitingIndex, IReadOnlyList<QuotaDecision> Pools, QuotaLease? Lease = null)
{
    /// <summary>The pool headers and problem bodies speak for: the one that rejected, else the one with the least remaining.</summary>
    public int ReportedIndex
    {
        get
        {
            if (!Admitted)
            {
                return LimitingIndex;
            }

            var reported = 0;
            for (var i = 1; i < Pools.Count; i++)
            {
                if (Pools[i].Remaining < Pools[reported].Remaining)
                {
                    reported = i;
                }
            }

            return reported;
        }
    }
}

/// <summary>An admitted request's place in the MaxInFlight count of every such node on its paths.</summary>
public sealed record QuotaLease(string Id, IReadOnlyList<QuotaDebit> Debits)
{
    /// <summary>Whether any debit's path has a node with MaxInFlight (a plain loop: it runs on every decision).</summary>
    public static bool Needed(IReadOnlyList<QuotaDebit> debits)
    {
        for (var i = 0; i < debits.Count; i++)
        {
            if (debits[i].Tenant.LeasesOnPath)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A fresh lease id (only requests through a node with MaxInFlight take one).</summary>
    public static string NewId() => Guid.NewGuid().ToString("N");

    /// <summary>The nodes that hold this lease: those with MaxInFlight on each debit's path, pool first.</summary>
    public IEnumerable<(PoolDefinition Pool, QuotaNode Node)> Holders() =>
        Debits.SelectMany(d => d.Tenant.PathFromRoot().Where(n => n.MaxInFlight is not null).Select(n => (d.Pool, n)));
}
