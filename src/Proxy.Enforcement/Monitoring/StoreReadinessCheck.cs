using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Redis;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Monitoring;

/// <summary>
/// <c>/readyz</c>, the store's part: whether Redis answers a PING within the store's timeout (the in-process
/// store always does) and whether its circuit is open. A store that is away makes the replica
/// <c>Degraded</c>, not unready: it still serves unmetered routes and answers metered ones with the outage
/// policy, and pulling every replica out of a load balancer would take those down too.
/// </summary>
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
        var open = services.GetRequiredService<RedisQuotaStore>().OpenCircuits;
        var circuits = open.Count == 0 ? "every circuit closed" : $"circuit open for pool(s) {string.Join(", ", open)}: their requests get the outage policy until a probe succeeds";
        try
        {
            var latency = await connection.GetDatabase().PingAsync().WaitAsync(ReadinessTimeout(live.Options), cancellationToken);
            return open.Count == 0
                ? HealthCheckResult.Healthy($"redis answered in {latency.TotalMilliseconds:F1} ms")
                : HealthCheckResult.Degraded($"redis answered in {latency.TotalMilliseconds:F1} ms; {circuits}");
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // No exception text on a public probe: the store's own log lines say what failed.
            return HealthCheckResult.Degraded($"redis unreachable; {circuits}; metered requests get the outage policy, unmetered routes serve");
        }
    }

    /// <summary>A probe is not a request: it gets a second at least, so a slow moment does not pull a replica out.</summary>
    internal static TimeSpan ReadinessTimeout(QuotaOptions options) => TimeSpan.FromMilliseconds(Math.Max(1000, options.Store.Timeout.TotalMilliseconds));
}
