using Microsoft.Extensions.Time.Testing;
using QuotaProxy.Enforcement.Quotas;
using QuotaProxy.Enforcement.Tests.Quotas;
using QuotaProxy.Testing;
using Xunit.Abstractions;

namespace QuotaProxy.Enforcement.Tests.Redis;

/// <summary>
/// The Lua script and the in-process store implement one rule: the same random sequence of debits and clock
/// moves through both must give identical decisions, step by step.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class DebitScriptDifferentialTests(RedisFixture redis, ITestOutputHelper output)
{
    private static readonly PoolDefinition[] Pools =
    [
        TestPools.Create("minute", 20, "1m", "UTC", ("prod", null), ("test", 8), ("dev", 3)),
        TestPools.Create("ny-daily", 60, "1d", "America/New_York", ("prod", 50), ("test", 15), ("e2e", 1)),
        TestPools.Create("second", 5, "1s", "Asia/Kolkata", ("prod", null), ("test", 2)),
        TestPools.Create("monthly", 500, "1mo", "Europe/Berlin", ("prod", 400), ("dev", 120)),
    ];

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task RandomSequence_LuaAndInProcess_DecideIdentically(int seed)
    {
        const int operations = 2_500;
        var random = new Random(seed);
        // Start on the eve of a daylight-saving change in New York so that the sequence crosses a 23-hour day.
        var clock = new FakeTimeProvider(new DateTimeOffset(2030, 3, 9, 4, 30, 0, TimeSpan.Zero));
        var reference = new InProcessQuotaStore(clock);
        var lua = RedisStores.Create(redis.Connection, clock);
        var admitted = 0;

        for (var step = 0; step < operations; step++)
        {
            clock.Advance(NextClockMove(random));
            var pool = Pools[random.Next(Pools.Length)];
            var tenant = pool.Nodes.Values.ElementAt(random.Next(pool.Nodes.Count));
            var debit = new QuotaDebit(pool, tenant, random.Next(10) == 0 ? random.Next(1, 60) : random.Next(1, 4));

            var expected = await reference.DebitAsync(debit, CancellationToken.None);
            var actual = await lua.DebitAsync(debit, CancellationToken.None);

            Assert.True(expected == actual, $"seed {seed}, step {step}, {pool.Name}/{tenant.Name} cost {debit.Cost} at {clock.GetUtcNow():O}: in-process {expected}, Lua {actual}");
            Assert.True(actual.PoolUsed <= pool.Limit && actual.Used <= tenant.Limit, $"limit exceeded at step {step}: {actual}");
            admitted += actual.Admitted ? 1 : 0;
        }

        output.WriteLine($"seed {seed}: {operations} operations, {admitted} admitted, clock ended at {clock.GetUtcNow():O}");
        Assert.InRange(admitted, operations / 10, operations - (operations / 10));
    }

    /// <summary>Mostly small steps (many decisions per window), sometimes a jump across a minute, an hour or a day.</summary>
    private static TimeSpan NextClockMove(Random random) => random.Next(100) switch
    {
        < 70 => TimeSpan.FromMilliseconds(random.Next(0, 300)),
        < 90 => TimeSpan.FromSeconds(random.Next(1, 40)),
        < 97 => TimeSpan.FromMinutes(random.Next(1, 90)),
        _ => TimeSpan.FromHours(random.Next(1, 30)),
    };
}
