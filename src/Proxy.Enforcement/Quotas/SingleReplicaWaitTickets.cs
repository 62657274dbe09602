namespace QuotaProxy.Enforcement.Quotas;

/// <summary>The in-process store's: one replica, nobody else waits.</summary>
internal sealed class SingleReplicaWaitTickets : IWaitTickets
{
    public Task HoldAsync(string pool, int? priority, TimeSpan lifetime, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task<int?> BestOtherAsync(string pool, CancellationToken cancellationToken) => Task.FromResult<int?>(null);
}
