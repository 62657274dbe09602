namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// What the ledger knows of a window that the store may have forgotten: how a Redis that lost its data
/// (a restart without persistence, a failover to a replica that had not caught up) gets its counters back.
/// </summary>
internal interface IUsageHistory
{
    /// <summary>
    /// The net credits (debits, overages, refunds, adjustments and resets) charged to <paramref name="pool"/>
    /// in <paramref name="window"/> before <paramref name="until"/>, by the tenant path each was charged to,
    /// leaving out the events <paramref name="except"/> names (those the store still holds, counted from
    /// there); empty when nothing was.
    /// </summary>
    Task<IReadOnlyDictionary<string, long>> NetByTenantAsync(string pool, WindowBounds window, DateTimeOffset until, IReadOnlyCollection<string> except, CancellationToken cancellationToken);

    /// <summary>
    /// When (Unix ms) the ledger billed a debit (or overage) of <paramref name="pool"/> for this tenant, route and
    /// request id between <paramref name="from"/> and <paramref name="to"/>; null when it holds none.
    /// </summary>
    Task<long?> DebitedAtAsync(string pool, string tenant, string route, string requestId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken);
}
