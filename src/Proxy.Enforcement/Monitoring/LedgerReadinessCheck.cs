using Microsoft.Extensions.Diagnostics.HealthChecks;
using QuotaProxy.Enforcement.Configuration;

namespace QuotaProxy.Enforcement.Monitoring;

/// <summary>
/// <c>/readyz</c>, the ledger's part (only when a ledger is configured): whether PostgreSQL answers
/// <c>SELECT 1</c>. PostgreSQL away makes the replica <c>Degraded</c>, not unready: usage events wait in
/// Redis (up to <c>Quota:Ledger:MaxBacklog</c>) and requests are served.
/// </summary>
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
            // No exception text on a public probe: the flusher's own log lines say what failed.
            return HealthCheckResult.Degraded("postgresql unreachable: usage events wait in Redis");
        }
    }
}
