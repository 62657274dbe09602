using Dapper;
using Npgsql;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Ledger;

/// <summary>The ledger as the store's memory: what a window has been charged, read back after Redis lost it.</summary>
/// <param name="migration">Waited for before the first read (tests that migrate themselves pass none).</param>
internal sealed class LedgerHistory(NpgsqlDataSource dataSource, LedgerMigration? migration = null) : IUsageHistory
{
    public async Task<IReadOnlyDictionary<string, long>> NetByTenantAsync(
        string pool, WindowBounds window, DateTimeOffset until, IReadOnlyCollection<string> except, CancellationToken cancellationToken)
    {
        try
        {
            await (migration?.EnsureAsync(cancellationToken) ?? Task.CompletedTask);
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            // occurred_at is the store's clock at the debit, the clock that chose the window.
            var rows = await connection.QueryAsync<(string Tenant, long Net)>(new CommandDefinition(
                """
                SELECT tenant, sum(credits)::bigint
                FROM usage_events
                WHERE pool = @Pool AND occurred_at >= @Start AND occurred_at < @Until AND NOT (event_id = ANY(@Except))
                GROUP BY tenant
                """,
                new { Pool = pool, window.Start, Until = until < window.End ? until : window.End, Except = except.ToArray() },
                cancellationToken: cancellationToken));
            return rows.ToDictionary(row => row.Tenant, row => row.Net, StringComparer.Ordinal);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return new Dictionary<string, long>(); // no flusher has created the ledger yet: nothing was billed
        }
    }

    public async Task<long?> DebitedAtAsync(string pool, string tenant, string route, string requestId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken)
    {
        try
        {
            await (migration?.EnsureAsync(cancellationToken) ?? Task.CompletedTask);
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            // As Unix ms in SQL: Npgsql reads a timestamptz as a DateTime, which Dapper will not map to a DateTimeOffset.
            return await connection.QuerySingleOrDefaultAsync<long?>(new CommandDefinition(
                """
                SELECT (extract(epoch FROM min(occurred_at)) * 1000)::bigint
                FROM usage_events
                WHERE pool = @Pool AND tenant = @Tenant AND route = @Route AND request_id = @RequestId
                  AND kind IN ('debit', 'overage') AND occurred_at BETWEEN @From AND @To
                """,
                new { Pool = pool, Tenant = tenant, Route = route, RequestId = requestId, From = from, To = to },
                cancellationToken: cancellationToken));
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return null;
        }
    }
}
