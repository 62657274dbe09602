namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// Short tickets that say, across replicas, which priorities are waiting on a pool: a replica holds one for
/// its best waiting priority while it has waiters, and holds back its lower-priority waiters while another
/// replica's ticket is for a higher priority.
/// </summary>
internal interface IWaitTickets
{
    /// <summary>This replica waits on <paramref name="pool"/> at <paramref name="priority"/> (1 is the highest) for <paramref name="lifetime"/>; null: no more.</summary>
    Task HoldAsync(string pool, int? priority, TimeSpan lifetime, CancellationToken cancellationToken);

    /// <summary>The highest priority (the smallest number) another replica waits on <paramref name="pool"/> at, or null.</summary>
    Task<int?> BestOtherAsync(string pool, CancellationToken cancellationToken);
}
