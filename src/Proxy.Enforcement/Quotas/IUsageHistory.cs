namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// What the ledger knows of a window that the store may have forgotten: how a Redis that lost its data
/// (a restart without persistence, a failover to a replica that had not caught up) gets its counters back.
/// </summary>
internal interface IUsageHistory
{
    /// <summary>
    /// The net credits (debits, overages, refunds and adjustments) charged to <paramref name="pool"/> in
    /// <paramref name="window"/>, by the tenant path each was charged to; empty when nothing was.
    /// </summary>
    Task<IReadOnlyDictionary<string, long>> NetByTenantAsync(string pool, WindowBounds window, CancellationToken cancellationToken);
}
