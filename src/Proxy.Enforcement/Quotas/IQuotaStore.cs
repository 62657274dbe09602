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

/// <summary>A pool's counters for one window: credits used per node (the pool's root included), and until when a vendor 429 closed it (0: open).</summary>
public sealed record PoolUsage(WindowBounds Window, IReadOnlyDictionary<QuotaNode, long> Used, long ClosedUntilMs)
{
    /// <summary>The pool's own credits used.</summary>
    public long PoolUsed(PoolDefinition pool) => Used.GetValueOrDefault(pool.Root);

    /// <summary>Every node of the pool with its usage from <paramref name="fields"/> (hash field → credits), as both stores lay them out.</summary>
    internal static PoolUsage From(PoolDefinition pool, WindowBounds window, Func<string, long> fields, long closedUntilMs) =>
        new(window, Nodes(pool).ToDictionary(node => node, node => fields(node.UsageField)), closedUntilMs);

    /// <summary>The pool's root, then every tenant node.</summary>
    internal static IEnumerable<QuotaNode> Nodes(PoolDefinition pool) => pool.Nodes.Values.Prepend(pool.Root);
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
