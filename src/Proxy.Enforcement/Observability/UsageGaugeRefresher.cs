using Microsoft.Extensions.Hosting;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Observability;

/// <summary>
/// Keeps the credits-used gauges true without traffic: every <see cref="MetricsOptions.UsageRefreshInterval"/>
/// it reads each pool's counters from the store (one read per pool) and sets the pool's and every configured
/// tenant's gauge, so a tenant shows from the start, and a new window shows as zero when it begins. Decisions
/// set the same gauges in between.
/// </summary>
internal sealed class UsageGaugeRefresher(IQuotaStore store, Admin.QuotaModelSource models, QuotaMetrics metrics, QuotaOptions options, TimeProvider timeProvider)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Metrics.UsageRefreshInterval, timeProvider);
        do
        {
            await RefreshAsync(stoppingToken);
        }
        while (await WaitAsync(timer, stoppingToken));
    }

    internal async Task RefreshAsync(CancellationToken cancellationToken)
    {
        foreach (var pool in models.Current.Pools.Values)
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            PoolUsage usage;
            try
            {
                usage = await store.ReadUsageAsync(pool, cancellationToken);
                metrics.StoreCall(StoreOperation.Read, started, failed: false);
            }
            catch (QuotaStoreUnavailableException)
            {
                // Logged by the store; the gauges keep their last values until the next pass.
                metrics.StoreCall(StoreOperation.Read, started, failed: true);
                continue;
            }

            metrics.PoolUsage(pool, usage.Used(pool.Root));
            foreach (var tenant in pool.Nodes.Values)
            {
                metrics.TenantUsage(pool, tenant, usage.Used(tenant));
            }
        }
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken stoppingToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
