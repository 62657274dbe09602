using Dapper;
using Npgsql;

namespace QuotaProxy.Enforcement.Ledger;

/// <summary>Billing queries over the rollups (the admin API exposes them).</summary>
/// <param name="migration">Waited for before the first query (tests that migrate themselves pass none).</param>
internal sealed class LedgerQueries(NpgsqlDataSource dataSource, LedgerMigration? migration = null)
{
    /// <summary>Usage per day, pool, tenant and route for the UTC days <paramref name="from"/> to <paramref name="to"/> inclusive.</summary>
    public async Task<IReadOnlyList<DailyUsage>> UsageAsync(DateOnly from, DateOnly to, string? tenant = null, string? route = null, CancellationToken cancellationToken = default)
    {
        await (migration?.EnsureAsync(cancellationToken) ?? Task.CompletedTask);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var rows = await connection.QueryAsync<DailyUsage>(new CommandDefinition(
            """
            SELECT day, pool, tenant, route, debited, overage, refunded, adjusted, net, events
            FROM usage_daily
            WHERE day BETWEEN @From AND @To
              AND (@Tenant::text IS NULL OR tenant = @Tenant)
              AND (@Route::text IS NULL OR route = @Route)
            ORDER BY day, pool, tenant, route
            """,
            new { From = from, To = to, Tenant = tenant, Route = route },
            cancellationToken: cancellationToken));
        return [.. rows];
    }
}
