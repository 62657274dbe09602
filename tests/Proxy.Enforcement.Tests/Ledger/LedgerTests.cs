using Dapper;
using Npgsql;
using QuotaProxy.Enforcement.Ledger;
using QuotaProxy.Testing;

using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Tests.Ledger;

/// <summary>The ledger's schema, writer and queries on a real PostgreSQL, a fresh database per test.</summary>
[Collection(PostgresCollection.Name)]
public sealed class LedgerTests(PostgresFixture postgres)
{
    private static readonly DateTimeOffset Monday = new(2030, 6, 10, 9, 30, 0, TimeSpan.Zero);

    private static UsageEvent Event(string id, long credits, UsageKind kind = UsageKind.Debit, string tenant = "prod", string route = "quotes", DateTimeOffset? at = null) =>
        new(id, at ?? Monday, "vendor-daily", tenant, route, credits, kind, false, $"req-{id}");

    [Fact]
    public async Task Migrate_OnAnEmptyDatabase_AppliesEveryMigrationOnce_EvenWhenReplicasStartTogether()
    {
        var database = await postgres.NewDatabaseAsync();

        var concurrent = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => LedgerSchema.MigrateAsync(database)));
        var again = await LedgerSchema.MigrateAsync(database);

        Assert.Equal(LedgerSchema.Migrations.Select(m => m.Version), concurrent.SelectMany(v => v).Order());
        Assert.Empty(again);
        await using var connection = new NpgsqlConnection(database);
        Assert.Equal(LedgerSchema.Migrations.Count, await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM schema_migrations"));
        Assert.Equal(2, await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('usage_events', 'usage_daily')"));
    }

    [Fact]
    public async Task OnAFreshDatabase_AnAdminChangeAndAUsageQuery_BeforeTheFlusherHasMigrated_WaitForOneMigration_AndSucceed()
    {
        // The proxy's order on a fresh database: the admin API may be called before the flusher's first pass.
        var database = await postgres.NewDatabaseAsync();
        await using var dataSource = NpgsqlDataSource.Create(database);
        var migration = new LedgerMigration(database);
        var audit = new Admin.AdminAudit(Microsoft.Extensions.Logging.Abstractions.NullLogger<Admin.AdminAudit>.Instance, dataSource, migration);

        await Task.WhenAll(
            audit.RecordAsync("ops", "override", "vendor-daily", "test", null, new { Limit = 5 }, CancellationToken.None),
            new LedgerQueries(dataSource, migration).UsageAsync(new DateOnly(2030, 6, 10), new DateOnly(2030, 6, 10)),
            migration.EnsureAsync(CancellationToken.None));

        var entry = Assert.Single(await audit.RecentAsync(5, CancellationToken.None));
        Assert.Equal(("ops", "override", "test"), (entry.Actor, entry.Action, entry.Tenant));
        await using var connection = await dataSource.OpenConnectionAsync();
        Assert.Equal(LedgerSchema.Migrations.Count, await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM schema_migrations"));
    }

    [Fact]
    public async Task Write_TheSameEventsTwice_BillsThemOnce_InEventsAndInRollups()
    {
        var database = await postgres.NewDatabaseAsync();
        await LedgerSchema.MigrateAsync(database);
        await using var dataSource = NpgsqlDataSource.Create(database);
        var writer = new LedgerWriter(dataSource);
        UsageEvent[] batch = [Event("e1", 5), Event("e2", 3), Event("e3", 2, UsageKind.Overage), Event("e4", -5, UsageKind.Refund), Event("e5", 1, UsageKind.Adjustment)];

        var first = await writer.WriteAsync(batch);
        var redelivered = await writer.WriteAsync([.. batch, Event("e6", 4), Event("e6", 4)]);

        Assert.Equal(5, first);
        Assert.Equal(1, redelivered);
        await using var connection = await dataSource.OpenConnectionAsync();
        Assert.Equal(6, await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM usage_events"));
        Assert.Equal(10, await connection.ExecuteScalarAsync<long>("SELECT sum(credits) FROM usage_events"));
        var day = Assert.Single(await new LedgerQueries(dataSource).UsageAsync(new DateOnly(2030, 6, 10), new DateOnly(2030, 6, 10)));
        Assert.Equal(new DailyUsage(new DateOnly(2030, 6, 10), "vendor-daily", "prod", "quotes", Debited: 12, Overage: 2, Refunded: 5, Adjusted: 1, Net: 10, Events: 6), day);
    }

    [Fact]
    public async Task WriteFirstDelivery_RollsUpAsTheIdempotentWriteDoes_AndABatchHoldingAnEventAlreadyThereIsStillBilledOnce()
    {
        var database = await postgres.NewDatabaseAsync();
        await LedgerSchema.MigrateAsync(database);
        await using var dataSource = NpgsqlDataSource.Create(database);
        var writer = new LedgerWriter(dataSource);
        UsageEvent[] batch = [Event("e1", 5), Event("e2", 3), Event("e3", 2, UsageKind.Overage), Event("e4", -5, UsageKind.Refund), Event("e5", 1, UsageKind.Adjustment), Event("t1", 7, tenant: "test")];

        var first = await writer.WriteFirstDeliveryAsync(batch);
        // Not a first delivery after all (say, a stream recreated with reused ids): the copy is refused and
        // the batch goes the idempotent way, so only e6 is new.
        var second = await writer.WriteFirstDeliveryAsync([Event("e6", 4), Event("e1", 5)]);

        Assert.Equal(6, first);
        Assert.Equal(1, second);
        await using var connection = await dataSource.OpenConnectionAsync();
        Assert.Equal(7, await connection.ExecuteScalarAsync<int>("SELECT count(*) FROM usage_events"));
        var days = await new LedgerQueries(dataSource).UsageAsync(new DateOnly(2030, 6, 10), new DateOnly(2030, 6, 10));
        Assert.Equal(
            [
                new DailyUsage(new DateOnly(2030, 6, 10), "vendor-daily", "prod", "quotes", Debited: 12, Overage: 2, Refunded: 5, Adjusted: 1, Net: 10, Events: 6),
                new DailyUsage(new DateOnly(2030, 6, 10), "vendor-daily", "test", "quotes", Debited: 7, Overage: 0, Refunded: 0, Adjusted: 0, Net: 7, Events: 1),
            ],
            days);
    }

    [Fact]
    public async Task Usage_OverARange_IsPerUtcDayTenantAndRoute_AndFiltersByTenantAndRoute()
    {
        var database = await postgres.NewDatabaseAsync();
        await LedgerSchema.MigrateAsync(database);
        await using var dataSource = NpgsqlDataSource.Create(database);
        await new LedgerWriter(dataSource).WriteAsync([
            Event("a", 1, at: Monday.AddDays(-1)),
            Event("b", 2, at: Monday),
            Event("c", 3, at: Monday.AddHours(14).AddMinutes(29)), // 23:59 UTC, still Monday
            Event("d", 4, tenant: "test", at: Monday.AddHours(14).AddMinutes(31)), // Tuesday 00:01 UTC
            Event("e", 5, route: "reports", at: Monday),
        ]);
        var queries = new LedgerQueries(dataSource);

        var monday = await queries.UsageAsync(new DateOnly(2030, 6, 10), new DateOnly(2030, 6, 10));
        var prodQuotes = await queries.UsageAsync(new DateOnly(2030, 6, 9), new DateOnly(2030, 6, 11), tenant: "prod", route: "quotes");

        Assert.Equal([("prod", "quotes", 5L), ("prod", "reports", 5L)], monday.Select(u => (u.Tenant, u.Route, u.Net)));
        Assert.Equal([(new DateOnly(2030, 6, 9), 1L), (new DateOnly(2030, 6, 10), 5L)], prodQuotes.Select(u => (u.Day, u.Net)));
    }

    [Fact]
    public async Task History_ReadsBackAWindowsNetPerTenant_AndFindsADecisionsDebitByItsRequestWithinItsSpan()
    {
        var database = await postgres.NewDatabaseAsync();
        var history = new LedgerHistory(NpgsqlDataSource.Create(database));
        var window = new WindowBounds(Monday.ToUnixTimeMilliseconds(), Monday.AddDays(1).ToUnixTimeMilliseconds());
        // Before any flusher created the ledger: nothing was billed.
        Assert.Empty(await history.NetByTenantAsync("vendor-daily", window, window.End, [], CancellationToken.None));
        Assert.Null(await history.DebitedAtAsync("vendor-daily", "prod", "quotes", "req-b", Monday, Monday.AddSeconds(1), CancellationToken.None));

        await LedgerSchema.MigrateAsync(database);
        var debitedAt = Monday.AddMilliseconds(250);
        await using var dataSource = NpgsqlDataSource.Create(database);
        await new LedgerWriter(dataSource).WriteAsync([
            Event("a", 1, at: Monday.AddMinutes(-1)), // the window before
            Event("b", 2, at: debitedAt),
            Event("c", -2, UsageKind.Refund, at: debitedAt.AddMilliseconds(300)),
            Event("d", 4, tenant: "test", at: Monday.AddHours(3)),
            Event("e", 5, at: Monday.AddDays(1)), // the window after
            new UsageEvent("f", Monday, "other-pool", "prod", "quotes", 7, UsageKind.Debit, false, "req-f"),
        ]);

        var net = await history.NetByTenantAsync("vendor-daily", window, window.End, [], CancellationToken.None);
        // Before a moment (what a snapshot of Redis at that moment held), and without the events Redis still holds.
        var beforeTheRefund = await history.NetByTenantAsync("vendor-daily", window, debitedAt.AddMilliseconds(1), [], CancellationToken.None);
        var withoutD = await history.NetByTenantAsync("vendor-daily", window, window.End, ["d", "z"], CancellationToken.None);
        var found = await history.DebitedAtAsync("vendor-daily", "prod", "quotes", "req-b", Monday, Monday.AddSeconds(1), CancellationToken.None);
        var outsideItsSpan = await history.DebitedAtAsync("vendor-daily", "prod", "quotes", "req-b", Monday.AddSeconds(1), Monday.AddSeconds(2), CancellationToken.None);
        var refundOnly = await history.DebitedAtAsync("vendor-daily", "prod", "quotes", "req-c", Monday, Monday.AddSeconds(1), CancellationToken.None);
        var otherTenant = await history.DebitedAtAsync("vendor-daily", "test", "quotes", "req-b", Monday, Monday.AddSeconds(1), CancellationToken.None);

        Assert.Equal(new Dictionary<string, long> { ["prod"] = 0, ["test"] = 4 }, net);
        Assert.Equal(new Dictionary<string, long> { ["prod"] = 2 }, beforeTheRefund);
        Assert.Equal(new Dictionary<string, long> { ["prod"] = 0 }, withoutD);
        Assert.Equal(debitedAt.ToUnixTimeMilliseconds(), found);
        Assert.Null(outsideItsSpan);
        Assert.Null(refundOnly);
        Assert.Null(otherTenant);
    }

    [Fact]
    public async Task Reset_IsInTheHistoryCountersAreRebuiltFrom_ButNeverInTheBill_ByEitherWritePath()
    {
        var database = await postgres.NewDatabaseAsync();
        await LedgerSchema.MigrateAsync(database);
        await using var dataSource = NpgsqlDataSource.Create(database);
        var writer = new LedgerWriter(dataSource);
        await writer.WriteFirstDeliveryAsync([Event("a", 5), Event("r", -3, UsageKind.Reset)]);
        // Redelivered (the idempotent path): "r" again is not written twice.
        await writer.WriteAsync([Event("b", 2), Event("s", -2, UsageKind.Reset), Event("r", -3, UsageKind.Reset)]);
        var window = new WindowBounds(Monday.ToUnixTimeMilliseconds(), Monday.AddDays(1).ToUnixTimeMilliseconds());

        var net = await new LedgerHistory(dataSource).NetByTenantAsync("vendor-daily", window, window.End, [], CancellationToken.None);
        await using var connection = await dataSource.OpenConnectionAsync();
        var bill = await connection.QuerySingleAsync<(long Debited, long Net, long Events)>("SELECT debited, net, events FROM usage_daily WHERE tenant = 'prod'");
        var resets = await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM usage_events WHERE kind = 'reset'");

        Assert.Equal(new Dictionary<string, long> { ["prod"] = 2 }, net);
        Assert.Equal((7L, 7L, 2L), bill);
        Assert.Equal(2, resets);
    }
}
