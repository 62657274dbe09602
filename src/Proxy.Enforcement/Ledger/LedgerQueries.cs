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

    /// <summary>Every usage event of the request with this id (the caller's X-Request-Id, else the proxy's), oldest first.</summary>
    public async Task<IReadOnlyList<RequestUsage>> RequestAsync(string requestId, CancellationToken cancellationToken = default)
    {
        await (migration?.EnsureAsync(cancellationToken) ?? Task.CompletedTask);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var rows = await connection.QueryAsync<(DateTime OccurredAt, string Pool, string Tenant, string Route, string Kind, long Credits)>(new CommandDefinition(
            """
            SELECT occurred_at, pool, tenant, route, kind, credits
            FROM usage_events
            WHERE request_id = @RequestId
            ORDER BY occurred_at, event_id
            LIMIT 1000
            """,
            new { RequestId = requestId },
            cancellationToken: cancellationToken));
        return [.. rows.Select(r => new RequestUsage(new DateTimeOffset(DateTime.SpecifyKind(r.OccurredAt, DateTimeKind.Utc)), r.Pool, r.Tenant, r.Route, r.Kind, r.Credits))];
    }

    /// <summary>
    /// Credits used by each tenant of <paramref name="pool"/> from <paramref name="start"/> to <paramref name="end"/>,
    /// per bucket of <paramref name="bucket"/> (charges, refunds, settlements and resets, as the counters saw them).
    /// </summary>
    public async Task<IReadOnlyList<(DateTimeOffset At, string Tenant, long Credits)>> TimelineAsync(
        string pool, DateTimeOffset start, DateTimeOffset end, TimeSpan bucket, CancellationToken cancellationToken = default)
    {
        await (migration?.EnsureAsync(cancellationToken) ?? Task.CompletedTask);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var rows = await connection.QueryAsync<(DateTime At, string Tenant, long Credits)>(new CommandDefinition(
            """
            SELECT date_bin(@Bucket, occurred_at, @Start) AS at, tenant, sum(credits)::bigint
            FROM usage_events
            WHERE pool = @Pool AND occurred_at >= @Start AND occurred_at < @End
            GROUP BY 1, 2
            ORDER BY 1, 2
            """,
            new { Pool = pool, Start = start.UtcDateTime, End = end.UtcDateTime, Bucket = bucket },
            cancellationToken: cancellationToken));
        return [.. rows.Select(r => (new DateTimeOffset(DateTime.SpecifyKind(r.At, DateTimeKind.Utc)), r.Tenant, r.Credits))];
    }
}
