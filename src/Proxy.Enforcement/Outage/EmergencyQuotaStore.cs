using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Outage;

/// <summary>
/// The store with the outage policy <c>AllowBounded</c> in front: a decision the store cannot make is
/// admitted from the pool's emergency allowance when there is some left (<see cref="EmergencyJournal"/>),
/// else it stays the outage policy's 503. Everything else goes to the store as it is.
/// </summary>
internal sealed class EmergencyQuotaStore(IQuotaStore store, EmergencyJournal journal) : IQuotaStore
{
    public async ValueTask<RouteDecision> DebitAsync(IReadOnlyList<QuotaDebit> debits, UsageContext? usage, CancellationToken cancellationToken)
    {
        try
        {
            return await store.DebitAsync(debits, usage, cancellationToken).ConfigureAwait(false);
        }
        catch (QuotaStoreUnavailableException) when (journal.TryAdmit(debits, usage) is { } emergency)
        {
            return emergency;
        }
    }

    /// <summary>A question, not a request: while the store is away it is answered with the outage (503), never from the allowance.</summary>
    public ValueTask<RouteDecision> PeekAsync(IReadOnlyList<QuotaDebit> debits, CancellationToken cancellationToken) => store.PeekAsync(debits, cancellationToken);

    public ValueTask CloseAsync(PoolDefinition pool, long untilMs, CancellationToken cancellationToken) => store.CloseAsync(pool, untilMs, cancellationToken);

    public ValueTask<long> ReopenAsync(PoolDefinition pool, CancellationToken cancellationToken) => store.ReopenAsync(pool, cancellationToken);

    public ValueTask<int> AdjustAsync(IReadOnlyList<QuotaDebit> debits, RouteDecision decision, long delta, UsageKind kind, UsageContext? usage, CancellationToken cancellationToken) =>
        store.AdjustAsync(debits, decision, delta, kind, usage, cancellationToken);

    public ValueTask RenewAsync(QuotaLease lease, CancellationToken cancellationToken) => store.RenewAsync(lease, cancellationToken);

    public ValueTask ReleaseAsync(QuotaLease lease, CancellationToken cancellationToken) => store.ReleaseAsync(lease, cancellationToken);

    public ValueTask<PoolUsage> ReadUsageAsync(PoolDefinition pool, CancellationToken cancellationToken) => store.ReadUsageAsync(pool, cancellationToken);

    public ValueTask ReturnLeaseAsync(QuotaDebit block, RouteDecision grant, long unspent, string operationId, CancellationToken cancellationToken) =>
        store.ReturnLeaseAsync(block, grant, unspent, operationId, cancellationToken);

    public ValueTask RecordLeaseAsync(PoolDefinition pool, LeaseRecord record, CancellationToken cancellationToken) => store.RecordLeaseAsync(pool, record, cancellationToken);

    public ValueTask<(long Leases, long Credits)> SweepLeasesAsync(PoolDefinition pool, TimeSpan grace, CancellationToken cancellationToken) => store.SweepLeasesAsync(pool, grace, cancellationToken);
}
