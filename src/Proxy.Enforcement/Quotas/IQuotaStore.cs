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
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout.</exception>
    ValueTask<RouteDecision> DebitAsync(IReadOnlyList<QuotaDebit> debits, CancellationToken cancellationToken);

    /// <summary>
    /// Closes <paramref name="pool"/> until <paramref name="untilMs"/> (Unix ms; a later closure already in
    /// force is kept): every decision before then is rejected as <see cref="QuotaLimitedBy.Vendor"/>.
    /// </summary>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout.</exception>
    ValueTask CloseAsync(PoolDefinition pool, long untilMs, CancellationToken cancellationToken);

    /// <summary>The response has ended: the lease leaves every node's in-flight count.</summary>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout (the lease then expires by itself).</exception>
    ValueTask ReleaseAsync(QuotaLease lease, CancellationToken cancellationToken);
}

public static class QuotaStoreExtensions
{
    /// <summary>A decision on one pool: <see cref="IQuotaStore.DebitAsync(IReadOnlyList{QuotaDebit}, CancellationToken)"/> with a single debit.</summary>
    public static async ValueTask<QuotaDecision> DebitAsync(this IQuotaStore store, QuotaDebit debit, CancellationToken cancellationToken) =>
        (await store.DebitAsync([debit], cancellationToken).ConfigureAwait(false)).Pools[0];
}

/// <summary>The store could not decide in time; the request gets the configured outage policy.</summary>
public sealed class QuotaStoreUnavailableException(string message, Exception? innerException = null)
    : Exception(message, innerException);
