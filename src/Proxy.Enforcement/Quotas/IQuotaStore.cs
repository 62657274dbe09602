namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// The counter store. One call is one atomic decision: every limit on the caller's path is checked against
/// the cost, and all of them are debited or none. Implementations: <see cref="InProcessQuotaStore"/> (the
/// embedded default and the reference model) and <c>RedisQuotaStore</c> (production, one Lua script).
/// </summary>
public interface IQuotaStore
{
    /// <summary>
    /// One atomic decision over a route's pools (usually one): every debit's tenant path checked in its
    /// pool, and every pool debited or none.
    /// </summary>
    /// <param name="usage">The route and request the debit is for: with the ledger on, the store records a usage event in the same atomic step.</param>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout.</exception>
    ValueTask<RouteDecision> DebitAsync(IReadOnlyList<QuotaDebit> debits, UsageContext? usage, CancellationToken cancellationToken);

    ValueTask<RouteDecision> DebitAsync(IReadOnlyList<QuotaDebit> debits, CancellationToken cancellationToken) => DebitAsync(debits, null, cancellationToken);

    /// <summary>
    /// Closes <paramref name="pool"/> until <paramref name="untilMs"/> (Unix ms; a later closure already in
    /// force is kept): every decision before then is rejected as <see cref="QuotaLimitedBy.Vendor"/>.
    /// </summary>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout.</exception>
    ValueTask CloseAsync(PoolDefinition pool, long untilMs, CancellationToken cancellationToken);

    /// <summary>
    /// Changes an admitted request's charge by <paramref name="delta"/> credits on every node it was charged
    /// to (negative gives credits back; positive charges even past a limit), in every pool whose window is
    /// still the one the debit was made in. With the ledger on, an event of <paramref name="kind"/> is
    /// recorded in the same step whatever the window.
    /// </summary>
    /// <returns>How many of the route's pools had their counters changed.</returns>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout.</exception>
    ValueTask<int> AdjustAsync(IReadOnlyList<QuotaDebit> debits, RouteDecision decision, long delta, Ledger.UsageKind kind, UsageContext? usage, CancellationToken cancellationToken);

    /// <summary>The response has ended: the lease leaves every node's in-flight count.</summary>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout (the lease then expires by itself).</exception>
    ValueTask ReleaseAsync(QuotaLease lease, CancellationToken cancellationToken);

    /// <summary>
    /// What <paramref name="pool"/>'s counters hold for its current window (the window the proxy's clock is
    /// in): every node's credits used, zero for a window no decision has opened yet. Reads, never writes.
    /// </summary>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout.</exception>
    ValueTask<PoolUsage> ReadUsageAsync(PoolDefinition pool, CancellationToken cancellationToken);
}

/// <summary>
/// A pool's counters for one window: every node's credits used and the running aggregates the admission
/// rule reads (0 for a window no decision has opened), and until when a vendor 429 closed it (0: open).
/// </summary>
public sealed record PoolUsage(WindowBounds Window, IReadOnlyDictionary<string, long> Counters, long ClosedUntilMs)
{
    /// <summary>Credits <paramref name="node"/> (with everything below it) has used this window.</summary>
    public long Used(QuotaNode node) => Counters.GetValueOrDefault(node.UsageField);

    /// <summary>The largest cost <paramref name="node"/> could be admitted for now by credits (rates, leases and closures aside).</summary>
    public long Available(QuotaNode node) => TreeAdmission.Remaining(node, new Dictionary<string, long>(Counters, StringComparer.Ordinal));

    /// <summary>Every counter field of the pool, as both stores lay them out: usage, guarantee and level aggregates.</summary>
    internal static IReadOnlyList<string> CounterFields(PoolDefinition pool) =>
        [.. pool.Nodes.Values.Prepend(pool.Root)
            .SelectMany(node => node.ChildLevels.Select(level => level.Field).Prepend(node.GuaranteeAggregateField).Prepend(node.UsageField))
            .Distinct(StringComparer.Ordinal)];
}

/// <summary>
/// What the store needs about a request besides its credits: the route and request id the ledger records,
/// and the caller's idempotency key (a retry with the same key is charged once per window).
/// </summary>
public sealed record UsageContext(string Route, string RequestId, string? IdempotencyKey = null);

public static class QuotaStoreExtensions
{
    /// <summary>A decision on one pool: <see cref="IQuotaStore.DebitAsync(IReadOnlyList{QuotaDebit}, CancellationToken)"/> with a single debit.</summary>
    public static async ValueTask<QuotaDecision> DebitAsync(this IQuotaStore store, QuotaDebit debit, CancellationToken cancellationToken) =>
        (await store.DebitAsync([debit], cancellationToken).ConfigureAwait(false)).Pools[0];

    /// <summary>Gives an admitted request's whole cost back: an adjustment of −cost, recorded as a refund.</summary>
    public static ValueTask<int> RefundAsync(this IQuotaStore store, IReadOnlyList<QuotaDebit> debits, RouteDecision decision, UsageContext? usage, CancellationToken cancellationToken) =>
        store.AdjustAsync(debits, decision, -debits[0].Cost, Ledger.UsageKind.Refund, usage, cancellationToken);
}

/// <summary>The store could not decide in time; the request gets the configured outage policy.</summary>
public sealed class QuotaStoreUnavailableException(string message, Exception? innerException = null)
    : Exception(message, innerException);
