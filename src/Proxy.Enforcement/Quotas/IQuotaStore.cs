namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// The counter store. One call is one atomic decision: every limit on the caller's path is checked against
/// the cost, and all of them are debited or none. Implementations: <see cref="InProcessQuotaStore"/> (the
/// embedded default and the reference model) and <c>RedisQuotaStore</c> (production, one Lua script).
/// </summary>
internal interface IQuotaStore
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
    /// The decision <see cref="DebitAsync(IReadOnlyList{QuotaDebit}, UsageContext?, CancellationToken)"/> would
    /// take now, by the same code, with nothing debited, held or recorded: used and remaining as if debited.
    /// </summary>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout.</exception>
    ValueTask<RouteDecision> PeekAsync(IReadOnlyList<QuotaDebit> debits, CancellationToken cancellationToken);

    /// <summary>
    /// Closes <paramref name="pool"/> until <paramref name="untilMs"/> (Unix ms; a later closure already in
    /// force is kept): every decision before then is rejected as <see cref="QuotaLimitedBy.Vendor"/>.
    /// </summary>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout.</exception>
    ValueTask CloseAsync(PoolDefinition pool, long untilMs, CancellationToken cancellationToken);

    /// <summary>Ends <paramref name="pool"/>'s vendor closure now (an operator's word): its requests are decided again.</summary>
    /// <returns>The closure that was in force (Unix ms), 0 if none.</returns>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout.</exception>
    ValueTask<long> ReopenAsync(PoolDefinition pool, CancellationToken cancellationToken);

    /// <summary>
    /// Changes an admitted request's charge by <paramref name="delta"/> credits on every node it was charged
    /// to (negative gives credits back; positive charges even past a limit), in every pool whose window is
    /// still the one the debit was made in. With the ledger on, an event of <paramref name="kind"/> is
    /// recorded in the same step whatever the window.
    /// </summary>
    /// <returns>How many of the route's pools had their counters changed.</returns>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout.</exception>
    ValueTask<int> AdjustAsync(IReadOnlyList<QuotaDebit> debits, RouteDecision decision, long delta, UsageKind kind, UsageContext? usage, CancellationToken cancellationToken);

    /// <summary>The request is still in flight: its lease lives another lease TTL in every node that holds it (one released or expired stays gone).</summary>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout.</exception>
    ValueTask RenewAsync(QuotaLease lease, CancellationToken cancellationToken);

    /// <summary>The response has ended: the lease leaves every node's in-flight count.</summary>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout (the lease then expires by itself).</exception>
    ValueTask ReleaseAsync(QuotaLease lease, CancellationToken cancellationToken);

    /// <summary>
    /// What <paramref name="pool"/>'s counters hold for its current window (the window the proxy's clock is
    /// in): every node's credits used, zero for a window no decision has opened yet. Reads, never writes.
    /// </summary>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout.</exception>
    ValueTask<PoolUsage> ReadUsageAsync(PoolDefinition pool, CancellationToken cancellationToken);

    /// <summary>
    /// Gives a credit lease's <paramref name="unspent"/> credits back to every node of
    /// <paramref name="block"/>'s path, in the window of <paramref name="grant"/> (not after it has moved on),
    /// with no usage event (they were never billed); once however often it is sent with the same
    /// <paramref name="operationId"/>, so a return whose reply was lost is sent again safely.
    /// </summary>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout.</exception>
    ValueTask ReturnLeaseAsync(QuotaDebit block, RouteDecision grant, long unspent, string operationId, CancellationToken cancellationToken);

    /// <summary>
    /// Records a credit lease of <paramref name="pool"/>: appends the usage events of its spends (the ledger's
    /// only record of them: the lease's own debit wrote none) and keeps what it still holds, or, closed,
    /// forgets it. The in-process store, which keeps no ledger and serves one replica, records nothing.
    /// </summary>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout (the caller keeps the record to send again).</exception>
    ValueTask RecordLeaseAsync(PoolDefinition pool, LeaseRecord record, CancellationToken cancellationToken);

    /// <summary>
    /// Claims the leases of <paramref name="pool"/> that ended more than <paramref name="grace"/> ago without
    /// being closed (their replica died): their unspent credits stay counted as used and are never billed.
    /// Records of leases closed or claimed more than <paramref name="keepEnded"/> ago go.
    /// </summary>
    /// <returns>The leases claimed (each is claimed once across replicas) and their unspent credits.</returns>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout.</exception>
    ValueTask<(long Leases, long Credits)> SweepLeasesAsync(PoolDefinition pool, TimeSpan grace, TimeSpan keepEnded, CancellationToken cancellationToken);
}
