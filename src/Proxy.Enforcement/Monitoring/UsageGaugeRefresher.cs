using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Hosting;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Monitoring;

/// <summary>
/// Keeps the credits-used gauges true without traffic: every <see cref="MetricsOptions.UsageRefreshInterval"/>
/// it reads each pool's counters from the store (one read per pool) and sets the pool's and every configured
/// tenant's gauge, so a tenant shows from the start, and a new window shows as zero when it begins. Decisions
/// set the same gauges in between. Each read also feeds the burn-rate forecast (<see cref="UsageForecast"/>) and its gauges.
/// </summary>
internal sealed class UsageGaugeRefresher(
    IQuotaStore store, LiveConfiguration models, QuotaMetrics metrics, TimeProvider timeProvider, ILogger<UsageGaugeRefresher> logger, UsageForecast forecast, Notifications.ThresholdWatch thresholds)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(models.Options.Metrics.UsageRefreshInterval, timeProvider);
        do
        {
            try
            {
                await RefreshAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                // A background pass survives anything: the gauges keep their values until the next one.
                QuotaLog.UsageRefreshFailed(logger, ex);
            }
        }
        while (await WaitAsync(timer, stoppingToken));
    }

    internal async Task RefreshAsync(CancellationToken cancellationToken)
    {
        foreach (var pool in models.Model.Pools.Values)
        {
            PoolUsage usage;
            try
            {
                usage = await store.ReadUsageAsync(pool, cancellationToken);
            }
            catch (QuotaStoreUnavailableException)
            {
                // Logged by the store; the gauges keep their last values until the next pass.
                continue;
            }

            metrics.PoolUsage(pool, usage.Used(pool.Root));
            foreach (var tenant in pool.Nodes.Values)
            {
                metrics.TenantUsage(pool, tenant, usage.Used(tenant));
            }

            await thresholds.ObserveAsync(pool, usage, cancellationToken);
            var now = timeProvider.GetUtcNow();
            forecast.Observe(pool, usage, now);
            foreach (var node in pool.Nodes.Values.Prepend(pool.Root))
            {
                if (forecast.For(pool, node) is { } projection)
                {
                    metrics.Forecast(pool.Name, node, projection.CreditsPerSecond, (projection.ExhaustsAt - now)?.TotalSeconds);
                }
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
