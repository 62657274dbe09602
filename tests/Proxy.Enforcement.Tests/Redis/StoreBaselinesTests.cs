using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Quotas;
using QuotaProxy.Enforcement.Redis;
using QuotaProxy.Enforcement.Tests.Quotas;
using QuotaProxy.Testing;

namespace QuotaProxy.Enforcement.Tests.Redis;

/// <summary>
/// A Redis that lost its data: debit.lua admits nothing on a hash tag without a baseline, and the store sets
/// one first: restoring the window from the usage history (the ledger), and raising a window Redis still
/// holds to what the history charged where it is short.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class StoreBaselinesTests(RedisFixture redis)
{
    /// <summary>Two levels, guarantees, allocations and priorities: every kind of aggregate field.</summary>
    private static readonly PoolDefinition Tree = TestPools.Create("tree", new PoolOptions
    {
        Limit = 1000,
        Window = "1d",
        Tenants =
        {
            ["prod"] = new TenantOptions
            {
                Allocation = 500, Guaranteed = 300, Priority = 1, Limit = 800,
                Tenants =
                {
                    ["api"] = new TenantOptions { Allocation = 300, Guaranteed = 200, Priority = 1 },
                    ["batch"] = new TenantOptions { Allocation = 150, Guaranteed = 50, Priority = 2 },
                },
            },
            ["test"] = new TenantOptions { Allocation = 200, Guaranteed = 100, Priority = 2, Limit = 400 },
            ["dev"] = new TenantOptions { Allocation = 100, Guaranteed = 20, Priority = 3, Limit = 200 },
        },
    });

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Counters_RebuiltFromEachTenantsNetCredits_AreExactlyTheCountersTheDebitsAndRefundsLeft(int seed)
    {
        var random = new Random(seed);
        var clock = new FakeTimeProvider(new DateTimeOffset(2030, 3, 9, 4, 30, 0, TimeSpan.Zero));
        var store = new InProcessQuotaStore(clock);
        var net = new Dictionary<string, long>(StringComparer.Ordinal);
        var tenants = Tree.Nodes.Values.ToList();
        for (var step = 0; step < 400; step++)
        {
            var tenant = tenants[random.Next(tenants.Count)];
            QuotaDebit[] debit = [new(Tree, tenant, random.Next(1, 12))];
            var decision = await store.DebitAsync(debit, null, CancellationToken.None);
            if (!decision.Admitted)
            {
                continue;
            }

            net[tenant.Path] = net.GetValueOrDefault(tenant.Path) + debit[0].Cost;
            if (random.Next(5) == 0)
            {
                await store.AdjustAsync(debit, decision, -debit[0].Cost, UsageKind.Refund, null, CancellationToken.None);
                net[tenant.Path] -= debit[0].Cost;
            }
        }

        var rebuilt = StoreBaselines.Counters(Tree, net);

        var left = store.Snapshot(Tree.Name).Where(field => field.Value != 0).ToDictionary(StringComparer.Ordinal);
        Assert.True(left["pool"] > 500, "the run used a good part of the pool");
        Assert.Equal(left.OrderBy(f => f.Key, StringComparer.Ordinal), rebuilt.Where(field => field.Value != 0).OrderBy(f => f.Key, StringComparer.Ordinal));
    }

    [Fact]
    public async Task Debit_OnARedisThatLostItsData_RestoresTheWindowFromTheHistoryBeforeDeciding()
    {
        var prefix = RedisFixture.NewKeyPrefix();
        var keys = new RedisKeys(prefix);
        var history = new BilledHistory(new Dictionary<string, long> { ["prod/api"] = 250, ["test"] = 150 });
        var store = Store(prefix, history);
        var database = redis.Connection.GetDatabase();

        // Nothing in Redis for this tag: the first decision restores what the history billed, then decides.
        var decision = await store.DebitAsync([Tree.Debit("test", 10)], null, CancellationToken.None);

        Assert.True(decision.Admitted);
        Assert.Equal(160, decision.Pools[0].Used);
        Assert.Equal(410, decision.Pools[0].PoolUsed);
        Assert.Equal(250, (long)await database.HashGetAsync(keys.PoolUsage(Tree), "t:prod"));
        Assert.True(await database.KeyExistsAsync(keys.Baseline(Tree.HashTag)));
        Assert.Equal(1, history.Reads);

        // The history was read once: the baseline is set, and later decisions go on from Redis alone.
        await store.DebitAsync([Tree.Debit("dev", 5)], null, CancellationToken.None);
        Assert.Equal(1, history.Reads);
        // The limit holds against the restored usage: test has 400 and has used 160.
        Assert.False((await store.DebitAsync([Tree.Debit("test", 241)], null, CancellationToken.None)).Admitted);
    }

    [Fact]
    public async Task Debit_OnARedisThatHoldsTheWindowButNoBaseline_KeepsTheCountersTheHistoryAgreesWith_AndRaisesThoseBelowIt()
    {
        var prefix = RedisFixture.NewKeyPrefix();
        var keys = new RedisKeys(prefix);
        var database = redis.Connection.GetDatabase();
        await Store(prefix, history: null).DebitAsync([Tree.Debit("dev", 7)], null, CancellationToken.None);
        // The marker taken away, as StoreBaselines.AuditAsync does when Redis is short of what was billed (a
        // replica promoted before it had every write): here dev's 7 are all there, test's 20 were lost.
        await database.KeyDeleteAsync(keys.Baseline(Tree.HashTag));
        var history = new BilledHistory(new Dictionary<string, long> { ["dev"] = 7, ["test"] = 20 });

        var decision = await Store(prefix, history).DebitAsync([Tree.Debit("dev", 1)], null, CancellationToken.None);

        Assert.Equal(8, decision.Pools[0].Used);
        Assert.Equal(28, decision.Pools[0].PoolUsed);
        Assert.Equal(20, (long)await database.HashGetAsync(keys.PoolUsage(Tree), "t:test"));
        Assert.Equal(1, history.Reads);
        Assert.True(await database.KeyExistsAsync(keys.Baseline(Tree.HashTag)));
    }

    [Fact]
    public async Task Debit_OnAHeldWindowWhileTheHistoryCannotBeRead_GoesOnFromWhatRedisHolds()
    {
        var prefix = RedisFixture.NewKeyPrefix();
        var keys = new RedisKeys(prefix);
        await Store(prefix, history: null).DebitAsync([Tree.Debit("dev", 7)], null, CancellationToken.None);
        await redis.Connection.GetDatabase().KeyDeleteAsync(keys.Baseline(Tree.HashTag));
        var history = new BilledHistory(new Dictionary<string, long> { ["dev"] = 100 }) { Failing = true };

        var decision = await Store(prefix, history).DebitAsync([Tree.Debit("dev", 1)], null, CancellationToken.None);

        Assert.Equal(8, decision.Pools[0].Used);
        Assert.Equal(1, history.Reads);
    }

    [Fact]
    public async Task Debit_WhileTheHistoryCannotBeRead_IsRefusedAsStoreUnavailable_AndAdmitsOnceItCan()
    {
        var prefix = RedisFixture.NewKeyPrefix();
        var history = new BilledHistory(new Dictionary<string, long> { ["test"] = 399 }) { Failing = true };
        var store = Store(prefix, history);

        await Assert.ThrowsAsync<QuotaStoreUnavailableException>(() => store.DebitAsync([Tree.Debit("test", 1)], null, CancellationToken.None).AsTask());
        Assert.False(await redis.Connection.GetDatabase().KeyExistsAsync(new RedisKeys(prefix).Baseline(Tree.HashTag)));

        history.Failing = false;
        Assert.True((await store.DebitAsync([Tree.Debit("test", 1)], null, CancellationToken.None)).Admitted);
        Assert.False((await store.DebitAsync([Tree.Debit("test", 1)], null, CancellationToken.None)).Admitted);
    }

    private RedisQuotaStore Store(string prefix, IUsageHistory? history)
    {
        var keys = new RedisKeys(prefix);
        var baselines = new StoreBaselines(redis.Connection, keys, TimeProvider.System, NullLogger.Instance, history, () => [Tree]);
        return new RedisQuotaStore(redis.Connection, keys, TimeSpan.FromSeconds(2), TimeProvider.System, NullLogger<RedisQuotaStore>.Instance, baselines: baselines);
    }

    /// <summary>What a ledger billed in the current window (this test is about the Redis side; the ledger's own query runs against PostgreSQL in the proxy's fault tests).</summary>
    private sealed class BilledHistory(IReadOnlyDictionary<string, long> netByTenant) : IUsageHistory
    {
        public int Reads { get; private set; }

        public bool Failing { get; set; }

        public Task<IReadOnlyDictionary<string, long>> NetByTenantAsync(string pool, WindowBounds window, DateTimeOffset until, IReadOnlyCollection<string> except, CancellationToken cancellationToken)
        {
            Reads++;
            return Failing ? throw new InvalidOperationException("the ledger is away") : Task.FromResult(netByTenant);
        }

        public Task<long?> DebitedAtAsync(string pool, string tenant, string route, string requestId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken) =>
            Task.FromResult<long?>(null);
    }
}
