using Microsoft.Extensions.Diagnostics.HealthChecks;
using QuotaProxy.Enforcement.Configuration;

namespace QuotaProxy.Enforcement.Monitoring;

/// <summary><c>/readyz</c>: the ledger's PostgreSQL answers <c>SELECT 1</c> (only when a ledger is configured).</summary>
internal sealed class LedgerReadinessCheck(LiveConfiguration live, Npgsql.NpgsqlDataSource dataSource) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(StoreReadinessCheck.ReadinessTimeout(live.Options));
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
