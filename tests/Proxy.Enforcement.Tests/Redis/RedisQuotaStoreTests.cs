using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;
using QuotaProxy.Enforcement.Redis;
using QuotaProxy.Enforcement.Tests.Quotas;
using QuotaProxy.Testing;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Tests.Redis;

[Collection(RedisCollection.Name)]
public sealed class RedisQuotaStoreTests(RedisFixture redis)
{
    private static readonly PoolDefinition Daily = TestPools.Create("daily", 10, "1d", "UTC", ("prod", null), ("test", 4));

    [Fact]
    public async Task Debit_ServerClock_PicksTheWindowHoldingRedisTime()
    {
        var store = RedisStores.Create(redis.Connection);
        var server = redis.Connection.GetServer(redis.Connection.GetEndPoints()[0]);
        var serverNow = await server.TimeAsync();

        var decision = await store.DebitAsync(Daily.Debit("prod", 1), CancellationToken.None);

        var expected = Daily.Locate(new DateTimeOffset(serverNow, TimeSpan.Zero));
        Assert.True(decision.Admitted);
        Assert.Equal(expected, decision.Window);
        Assert.InRange(decision.NowMs, expected.StartMs, expected.EndMs - 1);
    }

    [Fact]
    public async Task Debit_KeepsEveryCounterInOneHashTaggedKey()
    {
        var prefix = RedisFixture.NewKeyPrefix();
        var store = RedisStores.Create(redis.Connection, prefix: prefix);

        await store.DebitAsync(Daily.Debit("test", 3), CancellationToken.None);

        var key = new RedisKeys(prefix).PoolUsage("daily");
        var fields = (await redis.Connection.GetDatabase().HashGetAllAsync(key)).ToDictionary(e => e.Name.ToString(), e => (long)e.Value);
        Assert.Equal(3, fields["pool"]);
        Assert.Equal(3, fields["t:test"]);
        Assert.True(fields["end"] > fields["start"]);
        var ttl = await redis.Connection.GetDatabase().KeyTimeToLiveAsync(key);
        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value, TimeSpan.FromSeconds(1), TimeSpan.FromDays(1) + TimeSpan.FromMinutes(1));
    }

    /// <summary>
    /// With ReplicaAcks, a lease record (its spends' usage events are the only billing of the calls its lease
    /// admitted) counts as recorded only once a replica holds it, as a debit does before its call: one the
    /// replica did not confirm throws, so the keeper sends it again, and the copy the master already holds makes
    /// that second sending change nothing. Before, a failover just after a record could lose its events (a
    /// suite run: 9 calls of one tenant never billed).
    /// </summary>
    [Fact]
    public async Task RecordLease_WithReplicaAcks_IsRecordedOnlyOnceAReplicaHoldsIt_AndOnceHoweverOftenItIsSent()
    {
        await using var sentinel = await LocalRedisSentinel.StartAsync();
        await using var connection = await ConnectionMultiplexer.ConnectAsync(sentinel.ConnectionString);
        var pool = TestPools.Create("leased", 100, "1d", "UTC", ("prod", null));
        var tenant = pool.Nodes.Values.First();
        var keys = new RedisKeys(RedisFixture.NewKeyPrefix());
        var store = new RedisQuotaStore(connection, keys, new StoreOptions().Timeout, TimeProvider.System, NullLogger<RedisQuotaStore>.Instance, ledger: true, replicaAcks: 1);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        LeaseRecord Record(long sequence, params string[] requests) =>
            new("lease-1", sequence, tenant, now + 30_000, 10, false, [.. requests.Select(r => new LeasedSpend("route", r, 1, UsageKind.Debit, now))]);

        await store.RecordLeaseAsync(pool, Record(1, "a", "b"), CancellationToken.None);
        sentinel.Second.Pause();
        try
        {
            await Assert.ThrowsAsync<QuotaStoreUnavailableException>(() => store.RecordLeaseAsync(pool, Record(2, "c"), CancellationToken.None).AsTask());
        }
        finally
        {
            sentinel.Second.Resume();
        }

        // Sent again, as the keeper does every pass, until the replica confirms it.
        await SentUntilTakenAsync(() => store.RecordLeaseAsync(pool, Record(2, "c"), CancellationToken.None).AsTask());
        var events = await connection.GetDatabase().StreamRangeAsync(keys.EventStream(pool));
        Assert.Equal(["a", "b", "c"], events.Select(e => ((string)e["e"]!)[^1..]));
    }

    /// <summary>
    /// The same rule for an admission journaled during an outage (ChargeOnceAsync, the journal's replay): its
    /// event bills a call that happened, so with ReplicaAcks it counts as charged only once a replica holds it;
    /// one not confirmed throws, the journal keeps it, and sent again it is applied once (its operation id).
    /// </summary>
    [Fact]
    public async Task ChargeOnce_WithReplicaAcks_IsChargedOnlyOnceAReplicaHoldsIt_AndOnceHoweverOftenItIsSent()
    {
        await using var sentinel = await LocalRedisSentinel.StartAsync();
        await using var connection = await ConnectionMultiplexer.ConnectAsync(sentinel.ConnectionString);
        var keys = new RedisKeys(RedisFixture.NewKeyPrefix());
        var store = new RedisQuotaStore(connection, keys, new StoreOptions().Timeout, TimeProvider.System, NullLogger<RedisQuotaStore>.Instance, ledger: true, replicaAcks: 1);
        // The first decision on a fresh Redis lays the tag's baseline, which can take longer than the default
        // timeout: tenant test's decisions go first until one is answered (a 503 costs nothing; only prod's
        // counter is checked below).
        await SentUntilTakenAsync(async () => Assert.True((await store.DebitAsync([Daily.Debit("test", 1)], null, CancellationToken.None)).Admitted));
        QuotaDebit[] debit = [Daily.Debit("prod", 3)];
        var decision = await store.DebitAsync(debit, new UsageContext("quotes", "request-0"), CancellationToken.None);
        var journaled = new UsageContext("quotes", "request-1");

        sentinel.Second.Pause();
        try
        {
            await Assert.ThrowsAsync<QuotaStoreUnavailableException>(() => store.ChargeOnceAsync(debit, decision, 3, journaled, "journal-1"));
        }
        finally
        {
            sentinel.Second.Resume();
        }

        await SentUntilTakenAsync(() => store.ChargeOnceAsync(debit, decision, 3, journaled, "journal-1"));
        var database = connection.GetDatabase();
        Assert.Equal(6, (long)await database.HashGetAsync(keys.PoolUsage(Daily), "t:prod"));
        var events = await database.StreamRangeAsync(keys.EventStream(Daily));
        Assert.Equal(["request-0", "request-1"], events.Select(e => ((string)e["e"]!)[^9..]));
    }

    /// <summary>Sent again while the store answers unavailable (as the keeper and the journal send theirs), until it is taken.</summary>
    private static Task<bool> SentUntilTakenAsync(Func<Task> send) =>
        Poll.UntilAsync(
            "the store to take it",
            async () =>
            {
                try
                {
                    await send();
                    return true;
                }
                catch (QuotaStoreUnavailableException)
                {
                    return false;
                }
            },
            confirmed => confirmed,
            TimeSpan.FromSeconds(10));

    [Fact]
    public async Task Adjust_WithAnOperationId_AppliesOnce_HoweverOftenItIsSent()
    {
        var prefix = RedisFixture.NewKeyPrefix();
        var keys = new RedisKeys(prefix);
        var store = RedisStores.Create(redis.Connection, prefix: prefix);
        QuotaDebit[] debit = [Daily.Debit("test", 3)];
        var decision = await store.DebitAsync(debit, null, CancellationToken.None);
        var database = redis.Connection.GetDatabase();

        var first = await AdjustScript.EvaluateAsync(database, keys, debit, decision, -3, UsageKind.Refund, null, operationId: "compensation-1");
        var again = await AdjustScript.EvaluateAsync(database, keys, debit, decision, -3, UsageKind.Refund, null, operationId: "compensation-1");
        var used = (long)await database.HashGetAsync(keys.PoolUsage("daily"), "t:test");
        var plain = await AdjustScript.EvaluateAsync(database, keys, debit, decision, 2, UsageKind.Adjustment, null);
        var plainAgain = await AdjustScript.EvaluateAsync(database, keys, debit, decision, 2, UsageKind.Adjustment, null);

        Assert.Equal((1, 0), (first, again));
        Assert.Equal(0, used);
        Assert.Equal((1, 1), (plain, plainAgain));
        Assert.Equal(4, (long)await database.HashGetAsync(keys.PoolUsage("daily"), "t:test"));
        Assert.True(await database.KeyExistsAsync(keys.OperationKey(Daily, "compensation-1")));
    }

    [Fact]
    public async Task RefundWhereDebited_GivesBackOnlyInARedisHoldingTheDebitsEvent_AndOnceHoweverOftenItIsSent()
    {
        var prefix = RedisFixture.NewKeyPrefix();
        var keys = new RedisKeys(prefix);
        var store = new RedisQuotaStore(redis.Connection, keys, TimeSpan.FromSeconds(2), TimeProvider.System, NullLogger<RedisQuotaStore>.Instance, ledger: true);
        QuotaDebit[] debit = [Daily.Debit("test", 3)];
        var usage = new UsageContext("quotes", "request-1");
        var decision = await store.DebitAsync(debit, usage, CancellationToken.None);
        var database = redis.Connection.GetDatabase();
        var debitEvent = Assert.Single(await database.StreamRangeAsync(keys.EventStream("daily"))).Id.ToString();
        long[] windowStarts = [decision.Pools[0].Window.StartMs];

        // A debit this Redis never held (one a demoted master took and lost in the switch): nothing changes.
        var elsewhere = await AdjustScript.RefundWhereDebitedAsync(database, keys, debit, windowStarts, usage, "give-back-1", "1-1");
        var usedThen = (long)await database.HashGetAsync(keys.PoolUsage("daily"), "t:test");
        var here = await AdjustScript.RefundWhereDebitedAsync(database, keys, debit, windowStarts, usage, "give-back-1", debitEvent);
        var again = await AdjustScript.RefundWhereDebitedAsync(database, keys, debit, windowStarts, usage, "give-back-1", debitEvent);

        Assert.True(decision.Admitted);
        Assert.False(elsewhere);
        Assert.Equal(3, usedThen);
        Assert.True(here);
        Assert.True(again); // applied already: nothing more changes
        Assert.Equal(0, (long)await database.HashGetAsync(keys.PoolUsage("daily"), "t:test"));
        var events = (await database.StreamRangeAsync(keys.EventStream("daily"))).Select(e => string.Join(' ', ((string)e["e"]!).Split(' ')[1..3])).ToList();
        Assert.Equal(["3 debit", "-3 refund"], events);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Debit_WhoseReplyIsLostWithItsConnection_IsLookedUpByItsUsageEvent_AndGivenBackIfItLanded(bool landed)
    {
        await using var server = await LocalRedisServer.StartAsync();
        await using var forwarder = new LoopbackForwarder(server.Port);
        var timeout = TimeSpan.FromMilliseconds(50);
        await using var connection = await ConnectionMultiplexer.ConnectAsync(RedisConnectionOptions.Create(new StoreOptions { Redis = forwarder.ConnectionString, Timeout = timeout }));
        await using var direct = await ConnectionMultiplexer.ConnectAsync(server.ConnectionString);
        var keys = new RedisKeys(RedisFixture.NewKeyPrefix());
        var metrics = new QuotaMetrics(Prometheus.Metrics.NewCustomRegistry());
        var store = new RedisQuotaStore(connection, keys, timeout, TimeProvider.System, NullLogger<RedisQuotaStore>.Instance, ledger: true, metrics: metrics, history: new NothingBilledYet());
        // One decision answered: the store's clock is known, so the next one carries a deadline.
        Assert.True((await store.DebitAsync([Daily.Debit("prod", 1)], new UsageContext("quotes", "request-1"), CancellationToken.None)).Admitted);

        if (landed)
        {
            forwarder.DropReplies(); // Redis runs the decision; its reply never comes back
        }
        else
        {
            forwarder.Blackhole(); // the decision never reaches Redis
        }

        await Assert.ThrowsAsync<QuotaStoreUnavailableException>(() => store.DebitAsync([Daily.Debit("prod", 2)], new UsageContext("quotes", "request-2"), CancellationToken.None).AsTask());
        var database = direct.GetDatabase();
        Assert.Equal(landed ? 3 : 1, (long)await database.HashGetAsync(keys.PoolUsage("daily"), "t:prod"));
        // The connection goes with the reply: no answer will ever come for that decision.
        forwarder.CutConnections();

        var outcome = landed ? "refunded" : "not_admitted";
        await Poll.UntilAsync(
            $"the lost decision to be resolved as {outcome}",
            () => Task.FromResult(Abandoned(metrics, outcome)),
            resolved => resolved == 1,
            TimeSpan.FromSeconds(30));
        Assert.Equal(1, (long)await database.HashGetAsync(keys.PoolUsage("daily"), "t:prod"));
        var events = (await database.StreamRangeAsync(keys.EventStream("daily"))).Select(e => string.Join(' ', ((string)e["e"]!).Split(' ')[1..3])).ToList();
        Assert.Equal(landed ? ["1 debit", "2 debit", "-2 refund"] : ["1 debit"], events);
        Assert.Equal(0, Abandoned(metrics, "unanswered"));
    }

    private static double Abandoned(QuotaMetrics metrics, string outcome)
    {
        using var stream = new MemoryStream();
        metrics.Registry.CollectAndExportAsTextAsync(stream).GetAwaiter().GetResult();
        return new ScrapedMetrics(System.Text.Encoding.UTF8.GetString(stream.ToArray())).Value("quota_proxy_store_abandoned_decisions_total", ("outcome", outcome));
    }

    /// <summary>A ledger that has not billed anything yet: the lost decision's event can only be in the stream.</summary>
    private sealed class NothingBilledYet : IUsageHistory
    {
        public Task<IReadOnlyDictionary<string, long>> NetByTenantAsync(string pool, WindowBounds window, DateTimeOffset until, IReadOnlyCollection<string> except, CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyDictionary<string, long>>(new Dictionary<string, long>());

        public Task<long?> DebitedAtAsync(string pool, string tenant, string route, string requestId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken) =>
            Task.FromResult<long?>(null);
    }

    [Fact]
    public async Task Debit_AfterScriptFlush_StillDecides()
    {
        var store = RedisStores.Create(redis.Connection);
        var server = redis.Connection.GetServer(redis.Connection.GetEndPoints()[0]);
        await store.DebitAsync(Daily.Debit("prod", 1), CancellationToken.None);

        await server.ScriptFlushAsync();
        var decision = await store.DebitAsync(Daily.Debit("prod", 1), CancellationToken.None);

        Assert.True(decision.Admitted);
        Assert.Equal(2, decision.PoolUsed);
    }

    [Fact]
    public async Task Debit_RedisUnreachable_ThrowsUnavailableWithinTheTimeout()
    {
        var options = RedisConnectionOptions.Create(new StoreOptions { Redis = $"127.0.0.1:{LoopbackPorts.Free()}", Timeout = TimeSpan.FromMilliseconds(50) });
        await using var connection = await ConnectionMultiplexer.ConnectAsync(options);
        var store = new RedisQuotaStore(connection, new RedisKeys(RedisFixture.NewKeyPrefix()), TimeSpan.FromMilliseconds(50), TimeProvider.System, NullLogger<RedisQuotaStore>.Instance);

        var watch = Stopwatch.StartNew();
        await Assert.ThrowsAsync<QuotaStoreUnavailableException>(() => store.DebitAsync(Daily.Debit("prod", 1), CancellationToken.None).AsTask());

        // A generous bound: the point is "no hang", not speed (the timeout itself is 50 ms).
        Assert.InRange(watch.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(2));
    }

    [Fact]
    public async Task Debit_OnTwoPoolsWithTheLedgerOn_TakesALeaseInEachPoolsSet_AndWritesEachPoolsEvent()
    {
        // The script finds a pool's lease sets after every pool's usage, state and stream keys: with the
        // ledger on and two pools, KEYS[7] and KEYS[8].
        var model = QuotaModelBuilder.Build(
            new QuotaOptions
            {
                Pools =
                {
                    ["day"] = new PoolOptions { Limit = 100, Window = "1d", Tenants = { ["prod"] = new TenantOptions { MaxInFlight = 2 } } },
                    ["minute"] = new PoolOptions { Limit = 100, Window = "1m", MaxInFlight = 5, Tenants = { ["prod"] = new TenantOptions() } },
                },
            },
            [["day", "minute"]]);
        var (day, minute) = (model.Pools["day"], model.Pools["minute"]);
        var keys = new RedisKeys(RedisFixture.NewKeyPrefix());
        var store = new RedisQuotaStore(redis.Connection, keys, TimeSpan.FromSeconds(2), TimeProvider.System, NullLogger<RedisQuotaStore>.Instance, ledger: true);
        var database = redis.Connection.GetDatabase();
        QuotaDebit[] debits = [day.Debit("prod", 3), minute.Debit("prod", 3)];

        var first = await store.DebitAsync(debits, new UsageContext("quotes", "req-1"), CancellationToken.None);
        var second = await store.DebitAsync(debits, new UsageContext("quotes", "req-2"), CancellationToken.None);
        var third = await store.DebitAsync(debits, new UsageContext("quotes", "req-3"), CancellationToken.None);
        var dayLeases = await database.SortedSetRangeByRankAsync(keys.LeaseKey(day, day.Nodes["prod"]));
        var minuteLeases = await database.SortedSetRangeByRankAsync(keys.LeaseKey(minute, minute.Root));
        var dayEvents = await database.StreamRangeAsync(keys.EventStream(day));
        var minuteEvents = await database.StreamRangeAsync(keys.EventStream(minute));

        Assert.True(first.Admitted && second.Admitted);
        Assert.Equal((false, QuotaLimitedBy.Concurrency, 0), (third.Admitted, third.Pools[0].LimitedBy, third.LimitingIndex));
        Assert.Equal(new[] { first.Lease!.Id, second.Lease!.Id }.Order(), dayLeases.Select(l => (string)l!).Order());
        Assert.Equal(new[] { first.Lease.Id, second.Lease.Id }.Order(), minuteLeases.Select(l => (string)l!).Order());
        Assert.Equal(2, dayEvents.Length);
        Assert.Equal(2, minuteEvents.Length);
        Assert.Contains("req-2", (string)minuteEvents[1].Values.Single().Value!, StringComparison.Ordinal);
        Assert.Equal((3, 6), (first.Pools[0].PoolUsed, second.Pools[1].PoolUsed));

        await store.ReleaseAsync(first.Lease, CancellationToken.None);
        var fourth = await store.DebitAsync(debits, new UsageContext("quotes", "req-4"), CancellationToken.None);
        Assert.True(fourth.Admitted);
        Assert.Equal(2, await database.SortedSetLengthAsync(keys.LeaseKey(day, day.Nodes["prod"])));
    }

    [Fact]
    public async Task Debit_ConcurrentCallers_NeverExceedThePool()
    {
        var store = RedisStores.Create(redis.Connection);
        var pool = TestPools.Create("race", 100, "1d", "UTC", ("a", 70), ("b", 70));

        var decisions = await Task.WhenAll(Enumerable.Range(0, 300).Select(i =>
            store.DebitAsync(pool.Debit(i % 2 == 0 ? "a" : "b", 1 + (i % 3)), CancellationToken.None).AsTask()))
            .WaitAsync(TimeSpan.FromSeconds(30));

        var admitted = decisions.Where(d => d.Admitted).ToList();
        var credits = decisions.Select((d, i) => d.Admitted ? 1 + (i % 3) : 0).Sum();
        Assert.Equal(100, credits);
        Assert.Equal(100, decisions.Max(d => d.PoolUsed));
        Assert.All(decisions, d => Assert.InRange(d.Used, 0, 70));
        Assert.NotEmpty(admitted);
    }
}
