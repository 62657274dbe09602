using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Observability;

namespace QuotaProxy.Enforcement.Admin;

/// <summary>
/// Grants that expire: an override with <c>expiresAt</c> goes out of force on every replica by itself, within
/// a quarter of a second of its time on this replica's clock (it checks that often), whether or not the store answers. Then one replica (the one whose
/// conditional removal from the store succeeds) records its end in the audit trail, as actor
/// <c>expiry</c>; a removal or record that fails is tried again until it is done, and grants that expired
/// while no replica ran are found in the store and ended the same way.
/// </summary>
internal sealed class OverrideExpiry(
    LiveConfiguration live, IOverrideStore store, AdminAudit audit, TimeProvider time, ILogger<OverrideExpiry> logger) : BackgroundService
{
    internal static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(250);

    /// <summary>How often the store itself is searched for expired grants nobody has ended.</summary>
    private const int StoreSweepTicks = 40;

    /// <summary>Expired grants out of force here whose removal, or whose record once this replica removed it, is not done yet.</summary>
    private readonly Dictionary<string, (TenantOverride Grant, bool Removed)> _ending = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Tick, time);
        var ticks = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                var now = time.GetUtcNow();
                foreach (var expired in await live.ExpireAsync(now, stoppingToken))
                {
                    QuotaLog.OverrideExpired(logger, expired.Key, expired.ExpiresAt!.Value);
                    _ending[expired.Key] = (expired, false);
                }

                if (++ticks % StoreSweepTicks == 0)
                {
                    await SweepStoreAsync(now, stoppingToken);
                }

                foreach (var (grant, removed) in _ending.Values.ToList())
                {
                    await EndAsync(grant, removed, stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: what is left is ended by another replica, or by this one after a restart.
        }
    }

    private async Task SweepStoreAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        try
        {
            foreach (var grant in (await store.LoadAsync(cancellationToken)).Where(o => o.ExpiredAt(now)))
            {
                _ending.TryAdd(grant.Key, (grant, false));
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            QuotaLog.OverridesUnavailable(logger, ex);
        }
    }

    private async Task EndAsync(TenantOverride grant, bool removed, CancellationToken cancellationToken)
    {
        try
        {
            if (removed || await store.RemoveIfAsync(grant.Key, grant, cancellationToken))
            {
                // This replica removed it: it alone records the end, and tries again until the record is made.
                _ending[grant.Key] = (grant, true);
                var configured = live.Model.Pools.GetValueOrDefault(grant.Pool)?.Nodes.GetValueOrDefault(grant.Tenant);
                await audit.RecordAsync(
                    "expiry",
                    "override-expired",
                    grant.Pool,
                    grant.Tenant,
                    new { grant.Limit, grant.Allocation, grant.Guaranteed, grant.ExpiresAt },
                    configured is null ? null : new { configured.Limit, configured.Allocation, configured.Guaranteed },
                    cancellationToken);
            }

            // Removed and recorded here, or already by another replica (or replaced by a newer override): done.
            _ending.Remove(grant.Key);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            QuotaLog.OverrideExpiryPending(logger, ex, grant.Key, grant.ExpiresAt!.Value);
        }
    }
}
