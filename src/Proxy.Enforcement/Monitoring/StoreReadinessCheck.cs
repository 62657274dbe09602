using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using QuotaProxy.Enforcement.Configuration;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Monitoring;

/// <summary><c>/readyz</c>: the Redis store answers a PING within the store's timeout (the in-process store always does).</summary>
internal sealed class StoreReadinessCheck(LiveConfiguration live, IServiceProvider services) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (live.Options.Store.Kind == StoreKind.InProcess)
        {
            return HealthCheckResult.Healthy("in-process store");
        }

        // Resolved here, not injected: the in-process store has no connection to make.
        var connection = services.GetRequiredService<IConnectionMultiplexer>();
        try
        {
            var latency = await connection.GetDatabase().PingAsync().WaitAsync(ReadinessTimeout(live.Options), cancellationToken);
            return HealthCheckResult.Healthy($"redis answered in {latency.TotalMilliseconds:F1} ms");
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return HealthCheckResult.Unhealthy($"redis: {ex.GetType().Name}: {ex.Message}");
        }
    }

    /// <summary>A probe is not a request: it gets a second at least, so a slow moment does not pull a replica out.</summary>
    internal static TimeSpan ReadinessTimeout(QuotaOptions options) => TimeSpan.FromMilliseconds(Math.Max(1000, options.Store.Timeout.TotalMilliseconds));
}
