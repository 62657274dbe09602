using Npgsql;
using NpgsqlTypes;

namespace QuotaProxy.Enforcement.Ledger;

/// <summary>
/// Writes batches of usage events to PostgreSQL, idempotently: a batch is copied (binary COPY) into a
/// temporary table, then inserted with <c>ON CONFLICT (event_id) DO NOTHING</c>, and only the rows that
/// were new are added to the daily rollups, all in one transaction. A batch written twice (a redelivery
/// after a crash between commit and acknowledge) therefore bills nothing twice.
/// </summary>
public sealed class LedgerWriter(NpgsqlDataSource dataSource)
{
    /// <returns>How many of the events were new to the ledger.</returns>
    public async Task<int> WriteAsync(IReadOnlyList<UsageEvent> events, CancellationToken cancellationToken = default)
    {
        if (events.Count == 0)
        {
            return 0;
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var create = new NpgsqlCommand(
            "CREATE TEMP TABLE incoming (LIKE usage_events INCLUDING DEFAULTS) ON COMMIT DROP", connection, transaction))
        {
            await create.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var copy = await connection.BeginBinaryImportAsync(
            "COPY incoming (event_id, occurred_at, pool, tenant, route, credits, kind, shadow, request_id) FROM STDIN (FORMAT BINARY)", cancellationToken))
        {
            foreach (var e in events)
            {
                await copy.StartRowAsync(cancellationToken);
                await copy.WriteAsync(e.EventId, NpgsqlDbType.Text, cancellationToken);
                await copy.WriteAsync(e.OccurredAt.UtcDateTime, NpgsqlDbType.TimestampTz, cancellationToken);
                await copy.WriteAsync(e.Pool, NpgsqlDbType.Text, cancellationToken);
                await copy.WriteAsync(e.Tenant, NpgsqlDbType.Text, cancellationToken);
                await copy.WriteAsync(e.Route, NpgsqlDbType.Text, cancellationToken);
                await copy.WriteAsync(e.Credits, NpgsqlDbType.Bigint, cancellationToken);
                await copy.WriteAsync(UsageEvent.KindName(e.Kind), NpgsqlDbType.Text, cancellationToken);
                await copy.WriteAsync(e.Shadow, NpgsqlDbType.Boolean, cancellationToken);
                if (e.RequestId is null)
                {
                    await copy.WriteNullAsync(cancellationToken);
                }
                else
                {
                    await copy.WriteAsync(e.RequestId, NpgsqlDbType.Text, cancellationToken);
                }
            }

            await copy.CompleteAsync(cancellationToken);
        }

        int inserted;
        await using (var insert = new NpgsqlCommand(InsertNewAndRollUp, connection, transaction))
        {
            inserted = Convert.ToInt32(await insert.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
        }

        await transaction.CommitAsync(cancellationToken);
        return inserted;
    }

    private const string InsertNewAndRollUp = """
        WITH new AS (
            INSERT INTO usage_events (event_id, occurred_at, pool, tenant, route, credits, kind, shadow, request_id)
            SELECT event_id, occurred_at, pool, tenant, route, credits, kind, shadow, request_id FROM incoming
            ON CONFLICT (event_id) DO NOTHING
            RETURNING *
        ), rolled AS (
            INSERT INTO usage_daily AS d (day, pool, tenant, route, debited, overage, refunded, adjusted, net, events)
            SELECT (occurred_at AT TIME ZONE 'UTC')::date, pool, tenant, route,
                   coalesce(sum(credits) FILTER (WHERE kind = 'debit'), 0),
                   coalesce(sum(credits) FILTER (WHERE kind = 'overage'), 0),
                   coalesce(-sum(credits) FILTER (WHERE kind = 'refund'), 0),
                   coalesce(sum(credits) FILTER (WHERE kind = 'adjustment'), 0),
                   sum(credits),
                   count(*)
            FROM new
            GROUP BY 1, 2, 3, 4
            ON CONFLICT (day, pool, tenant, route) DO UPDATE SET
                debited = d.debited + excluded.debited,
                overage = d.overage + excluded.overage,
                refunded = d.refunded + excluded.refunded,
                adjusted = d.adjusted + excluded.adjusted,
                net = d.net + excluded.net,
                events = d.events + excluded.events
        )
        SELECT count(*) FROM new
        """;
}
