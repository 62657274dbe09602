using Npgsql;
using NpgsqlTypes;

using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Ledger;

/// <summary>
/// Writes batches of usage events to PostgreSQL, idempotently: a batch is copied (binary COPY) into a
/// temporary table, then inserted with <c>ON CONFLICT (event_id) DO NOTHING</c>, and only the rows that
/// were new are added to the daily rollups, all in one transaction. A batch written twice (a redelivery
/// after a crash between commit and acknowledge) therefore bills nothing twice.
/// </summary>
internal sealed class LedgerWriter(NpgsqlDataSource dataSource)
{
    private const string Columns = "event_id, occurred_at, pool, tenant, route, credits, kind, shadow, request_id";

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

        await CopyAsync(connection, "incoming", events, cancellationToken);

        int inserted;
        await using (var insert = new NpgsqlCommand(InsertNewAndRollUp, connection, transaction))
        {
            inserted = Convert.ToInt32(await insert.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
        }

        await transaction.CommitAsync(cancellationToken);
        return inserted;
    }

    /// <summary>
    /// Writes events on their first delivery, which no earlier write can hold (a stream hands an entry to
    /// a consumer group's <c>&gt;</c> read once): copied straight into <c>usage_events</c>, with the rollups
    /// summed here, about half of PostgreSQL's work per event. Should one be there after all, the primary key
    /// refuses the copy, the transaction rolls back whole, and the batch goes the idempotent way of
    /// <see cref="WriteAsync"/>: still nothing billed twice.
    /// </summary>
    /// <returns>How many of the events were new to the ledger.</returns>
    public async Task<int> WriteFirstDeliveryAsync(IReadOnlyList<UsageEvent> events, CancellationToken cancellationToken = default)
    {
        if (events.Count == 0)
        {
            return 0;
        }

        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await CopyAsync(connection, "usage_events", events, cancellationToken);
            await RollUpAsync(connection, transaction, events, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            return events.Count;
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            return await WriteAsync(events, cancellationToken);
        }
    }

    private static async Task CopyAsync(NpgsqlConnection connection, string table, IReadOnlyList<UsageEvent> events, CancellationToken cancellationToken)
    {
        await using (var copy = await connection.BeginBinaryImportAsync(
            $"COPY {table} ({Columns}) FROM STDIN (FORMAT BINARY)", cancellationToken))
        {
            // The rows go into Npgsql's write buffer synchronously (it flushes to the socket when full):
            // nine awaited calls a row cost the flusher more CPU than the copy itself.
            foreach (var e in events)
            {
                copy.StartRow();
                copy.Write(e.EventId, NpgsqlDbType.Text);
                copy.Write(e.OccurredAt.UtcDateTime, NpgsqlDbType.TimestampTz);
                copy.Write(e.Pool, NpgsqlDbType.Text);
                copy.Write(e.Tenant, NpgsqlDbType.Text);
                copy.Write(e.Route, NpgsqlDbType.Text);
                copy.Write(e.Credits, NpgsqlDbType.Bigint);
                copy.Write(UsageKinds.Name(e.Kind), NpgsqlDbType.Text);
                copy.Write(e.Shadow, NpgsqlDbType.Boolean);
                if (e.RequestId is null)
                {
                    copy.WriteNull();
                }
                else
                {
                    copy.Write(e.RequestId, NpgsqlDbType.Text);
                }
            }

            await copy.CompleteAsync(cancellationToken);
        }
    }

    /// <summary>
    /// Adds events known to be new to <c>usage_daily</c>, summed here per day, pool, tenant and route. The
    /// rows are upserted in key order, so writers in several replicas lock them in one order: no deadlock.
    /// </summary>
    private static async Task RollUpAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<UsageEvent> events, CancellationToken cancellationToken)
    {
        var totals = new Dictionary<(DateOnly Day, string Pool, string Tenant, string Route), long[]>();
        foreach (var e in events.Where(e => e.Kind is not (UsageKind.Reset or UsageKind.Lease)))
        {
            var key = (DateOnly.FromDateTime(e.OccurredAt.UtcDateTime), e.Pool, e.Tenant, e.Route);
            if (!totals.TryGetValue(key, out var sums))
            {
                totals[key] = sums = new long[5];
            }

            // debited, overage, refunded (a refund's credits are negative; refunded counts them positive),
            // adjusted, events. net is computed from them in the upsert.
            var column = e.Kind switch { UsageKind.Debit => 0, UsageKind.Overage => 1, UsageKind.Refund => 2, _ => 3 };
            sums[column] += e.Kind == UsageKind.Refund ? -e.Credits : e.Credits;
            sums[4]++;
        }

        await using var upsert = new NpgsqlCommand(UpsertRollups, connection, transaction);
        upsert.Parameters.Add(new NpgsqlParameter { Value = totals.Keys.Select(k => k.Day).ToArray() });
        upsert.Parameters.Add(new NpgsqlParameter { Value = totals.Keys.Select(k => k.Pool).ToArray() });
        upsert.Parameters.Add(new NpgsqlParameter { Value = totals.Keys.Select(k => k.Tenant).ToArray() });
        upsert.Parameters.Add(new NpgsqlParameter { Value = totals.Keys.Select(k => k.Route).ToArray() });
        for (var column = 0; column < 5; column++)
        {
            upsert.Parameters.Add(new NpgsqlParameter { Value = totals.Values.Select(sums => sums[column]).ToArray() });
        }

        await upsert.ExecuteNonQueryAsync(cancellationToken);
    }

    private const string UpsertRollups = $$"""
        INSERT INTO usage_daily AS d (day, pool, tenant, route, debited, overage, refunded, adjusted, net, events)
        SELECT day, pool, tenant, route, debited, overage, refunded, adjusted, debited + overage - refunded + adjusted, events
        FROM unnest($1::date[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
             AS t (day, pool, tenant, route, debited, overage, refunded, adjusted, events)
        ORDER BY day, pool, tenant, route
        {{AddToRollup}}
        """;

    /// <summary>How a day's row takes in more events: every column adds up.</summary>
    private const string AddToRollup = """
        ON CONFLICT (day, pool, tenant, route) DO UPDATE SET
            debited = d.debited + excluded.debited,
            overage = d.overage + excluded.overage,
            refunded = d.refunded + excluded.refunded,
            adjusted = d.adjusted + excluded.adjusted,
            net = d.net + excluded.net,
            events = d.events + excluded.events
        """;

    private const string InsertNewAndRollUp = $$"""
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
            WHERE kind NOT IN ('reset', 'lease')
            GROUP BY 1, 2, 3, 4
            ORDER BY 1, 2, 3, 4
            {{AddToRollup}}
        )
        SELECT count(*) FROM new
        """;
}
