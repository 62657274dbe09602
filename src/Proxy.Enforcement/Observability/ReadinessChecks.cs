using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using QuotaProxy.Enforcement.Configuration;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Observability;

/// <summary><c>/readyz</c>: the Redis store answers a PING within the store's timeout (the in-process store always does).</summary>
internal sealed class StoreReadinessCheck(QuotaOptions options, IServiceProvider services) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (options.Store.Kind == StoreKind.InProcess)
        {
            return HealthCheckResult.Healthy("in-process store");
        }

        // Resolved here, not injected: the in-process store has no connection to make.
        var connection = services.GetRequiredService<IConnectionMultiplexer>();
        try
        {
            var latency = await connection.GetDatabase().PingAsync().WaitAsync(ReadinessTimeout(options), cancellationToken);
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

/// <summary><c>/readyz</c>: the ledger's PostgreSQL answers <c>SELECT 1</c> (only when a ledger is configured).</summary>
internal sealed class LedgerReadinessCheck(QuotaOptions options, Npgsql.NpgsqlDataSource dataSource) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(StoreReadinessCheck.ReadinessTimeout(options));
        try
        {
            await using var command = dataSource.CreateCommand("SELECT 1");
            await command.ExecuteScalarAsync(timeout.Token);
            return HealthCheckResult.Healthy("postgresql answered");
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or OperationCanceledException or TimeoutException)
        {
            return HealthCheckResult.Unhealthy($"postgresql: {ex.GetType().Name}: {ex.Message}");
        }
    }
}
