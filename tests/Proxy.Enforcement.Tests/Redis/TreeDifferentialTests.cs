using System.Globalization;
using Microsoft.Extensions.Time.Testing;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Quotas;
using QuotaProxy.Enforcement.Tests.Quotas;
using QuotaProxy.Enforcement.Redis;
using QuotaProxy.Testing;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace QuotaProxy.Enforcement.Tests.Redis;

/// <summary>
/// Random tenant trees (depth up to 3, random Allocation, Guaranteed, Priority, Limit, Overage, SoftLimit,
/// Rate, Burst and Mode) and random debits from random nodes, with clock moves across windows and rate
/// intervals, mode changes and vendor closures, through the Lua script on real Redis and through the
/// in-process store. After every step: identical decisions, identical counters (every field of the usage
/// hash and of the state hash), and the invariants of the model. Before each debit without an idempotency
/// key, both stores are asked the same question first (a peek): their answers agree with each other and
/// with the debit that follows, and change nothing (the counters compared after the debit would show it). CI runs
/// <see cref="DefaultOperations"/> per seed; <c>bench/differential.sh</c> runs the full 100,000.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class TreeDifferentialTests(RedisFixture redis, ITestOutputHelper output)
{
    private const int DefaultOperations = 5_000;

    /// <summary>Operations per seed; <c>QUOTAPROXY_DIFFERENTIAL_OPERATIONS</c> overrides it.</summary>
    private static int Operations =>
        int.TryParse(Environment.GetEnvironmentVariable("QUOTAPROXY_DIFFERENTIAL_OPERATIONS"), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : DefaultOperations;

    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    [InlineData(13)]
    [InlineData(14)]
    public async Task RandomTrees_LuaAndInProcess_DecideAndCountIdentically(int seed)
    {
        var random = new Random(seed);
        var clock = new FakeTimeProvider(new DateTimeOffset(2030, 3, 9, 4, 30, 0, TimeSpan.Zero));
        var reference = new InProcessQuotaStore(clock);
        var prefix = RedisFixture.NewKeyPrefix();
        var lua = RedisStores.Create(redis.Connection, clock, prefix);
        var database = redis.Connection.GetDatabase();
        // Pools 0 and 1 always enforce, so every invariant holds on them; pool 2 flips modes as it goes.
        var poolSeeds = Enumerable.Range(0, 3).Select(_ => random.Next()).ToArray();
        var pools = Enumerable.Range(0, 3).Select(i => RandomPool($"tree{i}", poolSeeds[i], modeSeed: null)).ToArray();
        int admitted = 0, rejected = 0, shadow = 0, closures = 0, routes = 0, rejectedBySecondPool = 0, releases = 0;
        var peeks = 0;
        var outstanding = new List<(QuotaLease InProcess, QuotaLease Lua)>();
        var refundable = new List<(QuotaDebit[] Debits, RouteDecision InProcess, RouteDecision Lua)>();
        var refunds = 0;
        var replays = 0;
        var limitedBy = new Dictionary<QuotaLimitedBy, int>();

        for (var step = 0; step < Operations; step++)
        {
            if (random.Next(50) == 0)
            {
                // A mode change: the same tree with its nodes' modes drawn again.
                pools[2] = RandomPool(pools[2].Name, poolSeeds[2], modeSeed: random.Next());
            }

            clock.Advance(NextClockMove(random));
            var pool = pools[random.Next(pools.Length)];
            if (random.Next(200) == 0)
            {
                // A vendor 429: the pool closes for up to two minutes, across window boundaries too.
                var until = clock.GetUtcNow().ToUnixTimeMilliseconds() + random.Next(0, 120_000);
                await reference.CloseAsync(pool, until, CancellationToken.None);
                await lua.CloseAsync(pool, until, CancellationToken.None);
                closures++;
            }

            var tenant = pool.Nodes.Values.ElementAt(random.Next(pool.Nodes.Count));
            var debit = new QuotaDebit(pool, tenant, random.Next(8) == 0 ? random.Next(5, 40) : random.Next(1, 4));

            // One step in eight is a route on two pools, when the other pool has a node of the same path.
            QuotaDebit[] debits = [debit];
            var other = pools[random.Next(pools.Length)];
            if (random.Next(8) == 0 && other != pool && other.Nodes.TryGetValue(tenant.Path, out var twin))
            {
                debits = [debit, new QuotaDebit(other, twin, debit.Cost)];
            }

            // One step in six carries an idempotency key from a small set, so that retries (replays, and past
            // them charged ones) happen, and, one in four, under another request's fingerprint (refused).
            var keyNumber = random.Next(20);
            var usage = random.Next(6) == 0
                ? new UsageContext("route", $"request-{step}", new IdempotencyClaim($"key-{keyNumber}", keyNumber + 1 + (random.Next(4) == 0 ? 100 : 0), 1 + (keyNumber % 3)))
                : null;
            // The question first (POST /quota/v1/decide): both stores answer it alike, change nothing, and the
            // request that follows at the same instant gets exactly the answer the question got.
            var question = usage is null ? (InProcess: await reference.PeekAsync(debits, CancellationToken.None), Lua: await lua.PeekAsync(debits, CancellationToken.None)) : default;
            var expectedRoute = await reference.DebitAsync(debits, usage, CancellationToken.None);
            var actualRoute = await lua.DebitAsync(debits, usage, CancellationToken.None);
            if (usage is null)
            {
                peeks++;
                Assert.True(
                    question.InProcess.Admitted == expectedRoute.Admitted && question.InProcess.Pools.SequenceEqual(expectedRoute.Pools) && question.InProcess.Lease is null,
                    $"seed {seed}, step {step}: the in-process store's answer to the question {Show(question.InProcess)} is not its decision {Show(expectedRoute)}");
                Assert.True(
                    question.Lua.Admitted == actualRoute.Admitted && question.Lua.Pools.SequenceEqual(actualRoute.Pools) && question.Lua.Lease is null,
                    $"seed {seed}, step {step}: Lua's answer to the question {Show(question.Lua)} is not its decision {Show(actualRoute)}");
            }

            replays += actualRoute.Pools.Count(p => p.Replayed);
            Assert.Equal(expectedRoute.Lease is null, actualRoute.Lease is null);
            if (expectedRoute.Admitted)
            {
                refundable.Add((debits, expectedRoute, actualRoute));
            }

            if (expectedRoute.Lease is not null)
            {
                outstanding.Add((expectedRoute.Lease, actualRoute.Lease!));
            }

            var where = $"seed {seed}, step {step}, {string.Join(" + ", debits.Select(d => d.Pool.Name))}/{tenant.Path} cost {debit.Cost} at {clock.GetUtcNow():O}";
            Assert.True(
                expectedRoute.Admitted == actualRoute.Admitted && expectedRoute.LimitingIndex == actualRoute.LimitingIndex && expectedRoute.Pools.SequenceEqual(actualRoute.Pools),
                $"{where}: in-process {Show(expectedRoute)}, Lua {Show(actualRoute)}");
            foreach (var checkedPool in debits.Select(d => d.Pool))
            {
                var counters = reference.Snapshot(checkedPool.Name);
                var hash = await database.HashGetAllAsync(new RedisKeys(prefix).PoolUsage(checkedPool));
                var luaCounters = hash.Where(e => e.Name != "start" && e.Name != "end").ToDictionary(e => (string)e.Name!, e => (long)e.Value, StringComparer.Ordinal);
                Assert.True(Same(counters, luaCounters), $"{where}: counters of {checkedPool.Name} differ: in-process {Show(counters)}, Lua {Show(luaCounters)}");
                var state = reference.SnapshotState(checkedPool.Name);
                var luaState = (await database.HashGetAllAsync(new RedisKeys(prefix).PoolState(checkedPool))).ToDictionary(e => (string)e.Name!, e => (long)e.Value, StringComparer.Ordinal);
                Assert.True(Same(state, luaState), $"{where}: rate state of {checkedPool.Name} differs: in-process {Show(state)}, Lua {Show(luaState)}");
                if (checkedPool != pools[2])
                {
                    CheckInvariants(checkedPool, counters, where);
                    CheckRates(checkedPool, state, (clock.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks / TimeSpan.TicksPerMicrosecond, where);
                }
            }

            await CheckLeasesAsync(reference, database, prefix, debits, pools[2], clock.GetUtcNow().ToUnixTimeMilliseconds(), where);
            if (outstanding.Count > 0 && random.Next(3) == 0)
            {
                // A response ends: its leases are released in both stores (the rest expire, or wait).
                var ended = random.Next(outstanding.Count);
                await reference.ReleaseAsync(outstanding[ended].InProcess, CancellationToken.None);
                await lua.ReleaseAsync(outstanding[ended].Lua, CancellationToken.None);
                outstanding.RemoveAt(ended);
                releases++;
            }

            if (refundable.Count > 0 && random.Next(10) == 0)
            {
                // A response that the route's RefundOn or CostFromResponseHeader acted on, in both stores alike.
                var (refundDebits, inProcess, luaRoute) = refundable[random.Next(refundable.Count)];
                refundable.RemoveAll(r => r.Debits == refundDebits);
                // A whole refund, or a settlement below the reservation (one above it may exceed a limit on
                // purpose, which the invariants below would rightly flag; the proxy tests cover that one).
                var delta = random.Next(2) == 0 ? -refundDebits[0].Cost : -random.Next(1, (int)refundDebits[0].Cost + 1);
                var kind = delta == -refundDebits[0].Cost ? QuotaProxy.Enforcement.Quotas.UsageKind.Refund : QuotaProxy.Enforcement.Quotas.UsageKind.Adjustment;
                var expectedRefund = await reference.AdjustAsync(refundDebits, inProcess, delta, kind, null, CancellationToken.None);
                var actualRefund = await lua.AdjustAsync(refundDebits, luaRoute, delta, kind, null, CancellationToken.None);
                Assert.True(expectedRefund == actualRefund, $"{where}: refund of {refundDebits.Length} pool(s): in-process {expectedRefund}, Lua {actualRefund}");
                refunds += actualRefund;
                foreach (var refundedPool in refundDebits.Select(d => d.Pool))
                {
                    var counters = reference.Snapshot(refundedPool.Name);
                    var hash = await database.HashGetAllAsync(new RedisKeys(prefix).PoolUsage(refundedPool));
                    var luaCounters = hash.Where(e => e.Name != "start" && e.Name != "end").ToDictionary(e => (string)e.Name!, e => (long)e.Value, StringComparer.Ordinal);
                    Assert.True(Same(counters, luaCounters), $"{where}: after a refund, counters of {refundedPool.Name} differ: in-process {Show(counters)}, Lua {Show(luaCounters)}");
                    if (refundedPool.Name != pools[2].Name)
                    {
                        CheckInvariants(refundedPool, counters, $"{where} (after a refund in {refundedPool.Name})");
                    }
                }
            }

            var actual = actualRoute.Pools[actualRoute.Admitted ? 0 : actualRoute.LimitingIndex];
            routes += debits.Length > 1 ? 1 : 0;
            rejectedBySecondPool += actualRoute.LimitingIndex == 1 ? 1 : 0;
            admitted += actual.Admitted ? 1 : 0;
            rejected += actual.Admitted ? 0 : 1;
            shadow += actual.Shadow ? 1 : 0;
            limitedBy[actual.LimitedBy] = limitedBy.GetValueOrDefault(actual.LimitedBy) + 1;
        }

        output.WriteLine($"seed {seed}: {Operations} operations, {admitted} admitted ({shadow} by shadow mode), {rejected} rejected, {closures} closures, {routes} on two pools ({rejectedBySecondPool} rejected by the second), {releases} lease releases, {refunds} pool refunds, {replays} idempotent replays; limited by: {string.Join(", ", limitedBy.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}"))}");
        Assert.True(limitedBy.GetValueOrDefault(QuotaLimitedBy.Rate) > 0 && limitedBy.GetValueOrDefault(QuotaLimitedBy.Vendor) > 0, "the sequence should exercise rates and closures");
        Assert.True(rejectedBySecondPool > 0, "the sequence should exercise routes rejected by their second pool");
        Assert.True(limitedBy.GetValueOrDefault(QuotaLimitedBy.Concurrency) > 0, "the sequence should exercise MaxInFlight");
        Assert.True(refunds > 0, "the sequence should exercise refunds");
        Assert.True(peeks > Operations / 2, $"the sequence should ask before most debits ({peeks})");
        Assert.True(replays > 0, "the sequence should exercise idempotent retries");
        Assert.True(admitted > Operations / 10 && rejected > Operations / 20, $"the sequence should exercise both outcomes: {admitted} admitted, {rejected} rejected");
    }

    /// <summary>
    /// No enforcing limit exceeded; every aggregate equals the sum it stands for; every unused guarantee is
    /// still spendable (a node whose whole path has an unused guarantee and room under its limits can
    /// still be admitted for one credit).
    /// </summary>
    private static void CheckInvariants(PoolDefinition pool, Dictionary<string, long> counters, string where)
    {
        long Used(QuotaNode node) => counters.GetValueOrDefault(node.UsageField);

        foreach (var node in pool.Nodes.Values.Prepend(pool.Root))
        {
            Assert.True(Used(node) <= node.Limit + node.Overage, $"{where}: {NameOf(node)} used {Used(node)} > limit {node.Limit} + overage {node.Overage}");
            Assert.True(Used(node) >= node.Children.Sum(Used), $"{where}: {NameOf(node)} used less than its children together");
            Assert.True(
                node.Children.Sum(c => Math.Min(Used(c), c.Guaranteed)) == counters.GetValueOrDefault(node.GuaranteeAggregateField),
                $"{where}: guarantee aggregate of {NameOf(node)} is {counters.GetValueOrDefault(node.GuaranteeAggregateField)}");
            // A level's aggregate is kept only where a child of lower priority reads it.
            foreach (var level in node.ChildLevels.Where(l => node.Children.Any(c => c.Priority > l.Priority)))
            {
                var sum = node.Children.Where(c => c.Priority == level.Priority)
                    .Sum(c => Math.Min(Used(c), c.Allocation) - Math.Min(Used(c), c.Guaranteed));
                Assert.True(
                    sum == counters.GetValueOrDefault(node.LevelAggregateField(level.Priority)),
                    $"{where}: level {level.Priority} aggregate of {NameOf(node)} is {counters.GetValueOrDefault(node.LevelAggregateField(level.Priority))}, expected {sum}");
            }
        }

        foreach (var node in pool.Nodes.Values)
        {
            var path = node.PathToRoot().ToList();
            var guaranteeLeft = path.All(n => n.Guaranteed - Used(n) >= 1 && Used(n) + 1 <= n.Limit + n.Overage);
            if (guaranteeLeft)
            {
                Assert.True(TreeAdmission.Remaining(node, counters) >= 1, $"{where}: {node.Path} has an unused guarantee on its whole path but cannot spend it");
            }
        }
    }

    /// <summary>
    /// Every node with MaxInFlight on the paths just decided holds the same live leases (by expiry) in both
    /// stores, and, outside the pool that flips to shadow mode, no more than its MaxInFlight.
    /// </summary>
    private static async Task CheckLeasesAsync(InProcessQuotaStore reference, IDatabase database, string prefix, QuotaDebit[] debits, PoolDefinition shadowPool, long nowMs, string where)
    {
        foreach (var debit in debits)
        {
            foreach (var node in debit.Tenant.PathFromRoot().Where(n => n.MaxInFlight is not null))
            {
                var expected = reference.LiveLeases(debit.Pool, node, nowMs);
                var live = await database.SortedSetRangeByScoreWithScoresAsync(new RedisKeys(prefix).LeaseKey(debit.Pool, node), nowMs, double.PositiveInfinity, Exclude.Start);
                long[] actual = [.. live.Select(e => (long)e.Score).Order()];
                Assert.True(expected.SequenceEqual(actual), $"{where}: leases of {debit.Pool.Name}/{NameOf(node)} differ: in-process [{string.Join(", ", expected)}], Lua [{string.Join(", ", actual)}]");
                Assert.True(expected.Length <= node.MaxInFlight || debit.Pool == shadowPool, $"{where}: {NameOf(node)} holds {expected.Length} leases, more than MaxInFlight {node.MaxInFlight}");
            }
        }
    }

    /// <summary>No enforcing node's GCRA arrival time runs further ahead of the clock than its burst allows.</summary>
    private static void CheckRates(PoolDefinition pool, Dictionary<string, long> state, long nowMicros, string where)
    {
        foreach (var node in pool.Nodes.Values.Prepend(pool.Root).Where(n => n.Rate is not null))
        {
            var ahead = state.GetValueOrDefault(node.RateField) - nowMicros;
            Assert.True(ahead <= node.Rate!.CapacityMicros, $"{where}: {NameOf(node)} is {ahead} µs ahead of the clock, more than its burst of {node.Rate.Burst} × {node.Rate.IntervalMicros} µs");
        }
    }

    private static string Show(RouteDecision route) =>
        $"admitted {route.Admitted}, limiting pool {route.LimitingIndex}: {string.Join(" | ", route.Pools)}";

    private static string NameOf(QuotaNode node) => node.IsRoot ? "the pool" : node.Path;

    private static bool Same(Dictionary<string, long> a, Dictionary<string, long> b) =>
        a.Count == b.Count && a.All(pair => b.TryGetValue(pair.Key, out var value) && value == pair.Value);

    private static string Show(Dictionary<string, long> counters) =>
        string.Join(", ", counters.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}"));

    private static readonly string[] Windows = ["1m", "1h", "1d", "1d"];

    /// <summary>
    /// A valid random tree from <paramref name="seed"/>: children's guarantees and allocations fit their
    /// parent's capacity. Without <paramref name="modeSeed"/> every node enforces; with it, modes are drawn
    /// from that seed and the tree stays the same.
    /// </summary>
    private static PoolDefinition RandomPool(string name, int seed, int? modeSeed)
    {
        var random = new Random(seed);
        var modes = modeSeed is { } m ? new Random(m) : null;
        var limit = random.Next(20, 120);
        var options = new PoolOptions
        {
            Limit = limit,
            Window = Windows[random.Next(Windows.Length)],
            TimeZone = random.Next(2) == 0 ? "UTC" : "America/New_York",
            SoftLimit = random.Next(3) == 0 ? random.Next(limit) : null,
            Mode = modes?.Next(4) == 0 ? QuotaMode.Shadow : QuotaMode.Enforce,
        };
        var (poolRate, poolBurst) = RandomRate(random);
        options = options with { Rate = poolRate, Burst = poolBurst, MaxInFlight = RandomMaxInFlight(random) };
        AddChildren(options.Tenants, limit, depth: 1, random, modes);
        return TestPools.Create(name, options);
    }

    private static void AddChildren(Dictionary<string, TenantOptions> tenants, long capacity, int depth, Random random, Random? modes)
    {
        var count = random.Next(1, depth == 1 ? 5 : 4);
        var allocationLeft = capacity;
        var guaranteeLeft = capacity;
        for (var i = 0; i < count; i++)
        {
            var limit = random.Next(3) == 0 ? (long?)null : random.Next((int)Math.Max(1, capacity / 3), (int)capacity + 1);
            var effectiveLimit = limit ?? capacity;
            var allocation = Math.Min(random.Next(0, (int)Math.Max(1, capacity / 2)), Math.Min(allocationLeft, effectiveLimit));
            var guaranteed = Math.Min(random.Next(0, (int)allocation + 1), guaranteeLeft);
            allocationLeft -= allocation;
            guaranteeLeft -= guaranteed;
            var tenant = new TenantOptions
            {
                Limit = limit,
                Allocation = allocation,
                Guaranteed = guaranteed,
                Priority = random.Next(4) == 0 ? null : random.Next(1, 4),
                Overage = random.Next(4) == 0 ? random.Next(1, 10) : null,
                SoftLimit = random.Next(4) == 0 ? random.Next(1, (int)effectiveLimit + 1) : null,
                Mode = modes?.Next(4) switch { 0 => QuotaMode.Shadow, 1 => QuotaMode.Enforce, _ => null },
            };
            var (rate, burst) = RandomRate(random);
            tenant = tenant with { Rate = rate, Burst = burst, MaxInFlight = RandomMaxInFlight(random) };
            if (depth < 3 && random.Next(3) == 0)
            {
                AddChildren(tenant.Tenants, effectiveLimit, depth + 1, random, modes);
            }

            tenants[$"n{depth}{i}"] = tenant;
        }
    }

    /// <summary>One node in four gets a rate: a few to a few hundred credits per second or minute, any burst.</summary>
    private static (string? Rate, long? Burst) RandomRate(Random random)
    {
        if (random.Next(4) != 0)
        {
            return (null, null);
        }

        var count = random.Next(2, 300);
        var rate = $"{count}/{(random.Next(2) == 0 ? "s" : "m")}";
        return (rate, random.Next(3) == 0 ? null : random.Next(1, count + 1));
    }

    /// <summary>One node in five allows 1 to 4 requests in flight.</summary>
    private static long? RandomMaxInFlight(Random random) => random.Next(5) == 0 ? random.Next(1, 5) : null;

    /// <summary>Mostly small steps, sometimes a jump across a minute, an hour or a day.</summary>
    private static TimeSpan NextClockMove(Random random) => random.Next(100) switch
    {
        < 90 => TimeSpan.FromMilliseconds(random.Next(0, 300)),
        < 98 => TimeSpan.FromSeconds(random.Next(1, 40)),
        < 99 => TimeSpan.FromMinutes(random.Next(1, 90)),
        _ => TimeSpan.FromHours(random.Next(1, 30)),
    };
}
