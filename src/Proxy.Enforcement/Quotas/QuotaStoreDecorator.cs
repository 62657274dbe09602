namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// A store in front of another that passes every call through unless it overrides it (like
/// <c>DelegatingHandler</c> for <c>HttpClient</c>): the outage policy and credit leases change a few calls
/// each and leave the rest as the store answers them.
/// </summary>
internal abstract class QuotaStoreDecorator(IQuotaStore inner) : IQuotaStore
{
    /// <summary>The store behind this one.</summary>
    protected IQuotaStore Inner => inner;

    public virtual ValueTask<RouteDecision> DebitAsync(IReadOnlyList<QuotaDebit> debits, UsageContext? usage, CancellationToken cancellationToken) =>
        inner.DebitAsync(debits, usage, cancellationToken);

    public virtual ValueTask<RouteDecision> PeekAsync(IReadOnlyList<QuotaDebit> debits, CancellationToken cancellationToken) => inner.PeekAsync(debits, cancellationToken);

    public virtual ValueTask CloseAsync(PoolDefinition pool, long untilMs, CancellationToken cancellationToken) => inner.CloseAsync(pool, untilMs, cancellationToken);

    public virtual ValueTask<long> ReopenAsync(PoolDefinition pool, CancellationToken cancellationToken) => inner.ReopenAsync(pool, cancellationToken);

    public virtual ValueTask<int> AdjustAsync(IReadOnlyList<QuotaDebit> debits, RouteDecision decision, long delta, UsageKind kind, UsageContext? usage, CancellationToken cancellationToken) =>
        inner.AdjustAsync(debits, decision, delta, kind, usage, cancellationToken);

    public virtual ValueTask RenewAsync(QuotaLease lease, CancellationToken cancellationToken) => inner.RenewAsync(lease, cancellationToken);

    public virtual ValueTask ReleaseAsync(QuotaLease lease, CancellationToken cancellationToken) => inner.ReleaseAsync(lease, cancellationToken);

    public virtual ValueTask<PoolUsage> ReadUsageAsync(PoolDefinition pool, CancellationToken cancellationToken) => inner.ReadUsageAsync(pool, cancellationToken);

    public virtual ValueTask ReturnLeaseAsync(QuotaDebit block, RouteDecision grant, long unspent, string operationId, CancellationToken cancellationToken) =>
        inner.ReturnLeaseAsync(block, grant, unspent, operationId, cancellationToken);

    public virtual ValueTask RecordLeaseAsync(PoolDefinition pool, LeaseRecord record, CancellationToken cancellationToken) => inner.RecordLeaseAsync(pool, record, cancellationToken);

    public virtual ValueTask<(long Leases, long Credits)> SweepLeasesAsync(PoolDefinition pool, TimeSpan grace, TimeSpan keepEnded, CancellationToken cancellationToken) =>
        inner.SweepLeasesAsync(pool, grace, keepEnded, cancellationToken);
}
