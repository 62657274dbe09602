using Microsoft.Extensions.Time.Testing;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Tests.Quotas;

/// <summary>
/// The burn-rate forecast on the in-process store's counters, read as the usage refresh reads them (every
/// 15 s here) under a synthetic load on a fake clock: a steady load is forecast within 1 %, a burst fades,
/// a new window starts over, and a run-out after the window's end is no forecast.
/// </summary>
public sealed class UsageForecastTests
{
    private static readonly TimeSpan Read = TimeSpan.FromSeconds(15);

    private static async Task SpendAsync(InProcessQuotaStore store, PoolDefinition pool, string tenant, int credits)
    {
        for (var i = 0; i < credits; i++)
        {
            Assert.True((await store.DebitAsync([new QuotaDebit(pool, pool.Nodes[tenant], 1)], null, CancellationToken.None)).Admitted);
        }
    }

    [Fact]
    public async Task SteadyLoad_IsForecastWithinOnePercent_AtTheTenantAndThePool()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2030, 6, 10, 6, 0, 0, TimeSpan.Zero));
        var store = new InProcessQuotaStore(clock);
        var pool = TestPools.Create("daily", 100_000, "1d", "UTC", ("prod", 20_000), ("test", null));
        var forecast = new UsageForecast();

        // prod spends 30 credits every 15 s (2 a second), test 15 (1 a second), for 20 minutes.
        for (var read = 0; read <= 80; read++)
        {
            forecast.Observe(pool, await store.ReadUsageAsync(pool, CancellationToken.None), clock.GetUtcNow());
            await SpendAsync(store, pool, "prod", 30);
            await SpendAsync(store, pool, "test", 15);
            clock.Advance(Read);
        }

        var now = clock.GetUtcNow();
        forecast.Observe(pool, await store.ReadUsageAsync(pool, CancellationToken.None), now);
        var prod = forecast.For(pool, pool.Nodes["prod"])!;
        var whole = forecast.For(pool, pool.Root)!;
        Assert.InRange(prod.CreditsPerSecond, 1.98, 2.02);
        Assert.InRange(whole.CreditsPerSecond, 2.97, 3.03);
        // prod has 20,000 − 2,430 left: at 2 a second, 8,785 s from now; the pool's 100,000 − 3,645 take 32,118 s.
        var prodLeft = 20_000 - (81 * 30);
        Assert.InRange((prod.ExhaustsAt!.Value - now).TotalSeconds, prodLeft / 2.0 * 0.99, prodLeft / 2.0 * 1.01);
        var poolLeft = 100_000 - (81 * 45);
        Assert.InRange((whole.ExhaustsAt!.Value - now).TotalSeconds, poolLeft / 3.0 * 0.99, poolLeft / 3.0 * 1.01);
        Assert.Equal(pool.Nodes["prod"], forecast.Soonest([new QuotaDebit(pool, pool.Nodes["prod"], 1)])!.Value.Node);
    }

    [Fact]
    public async Task ABurstFades_ANewWindowStartsOver_AndARunOutAfterTheWindowIsNoForecast()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2030, 6, 10, 23, 0, 0, TimeSpan.Zero));
        var store = new InProcessQuotaStore(clock);
        var pool = TestPools.Create("daily", 1_000_000, "1d", "UTC", ("prod", null));
        var forecast = new UsageForecast();
        var prod = pool.Nodes["prod"];
        async Task ReadAsync() => forecast.Observe(pool, await store.ReadUsageAsync(pool, CancellationToken.None), clock.GetUtcNow());

        await ReadAsync();
        Assert.Null(forecast.For(pool, prod)); // one read: no rate yet
        await SpendAsync(store, pool, "prod", 300);
        clock.Advance(Read);
        await ReadAsync();
        var burst = forecast.For(pool, prod)!;
        Assert.Equal(20, burst.CreditsPerSecond, 6);
        // 999,700 left at 20 a second is 13.9 h: after midnight, when the window resets. No run-out forecast.
        Assert.Null(burst.ExhaustsAt);

        // Ten quiet minutes: for the first five the rate is the average since the first read (300 credits over
        // 300 s: 1 a second), then it decays over the remaining 315 s by e^(-315/300): about 0.35 a second.
        for (var i = 0; i < 40; i++)
        {
            clock.Advance(Read);
            await ReadAsync();
        }

        Assert.InRange(forecast.For(pool, prod)!.CreditsPerSecond, Math.Exp(-315.0 / 300) * 0.99, Math.Exp(-315.0 / 300) * 1.01);

        // Midnight: a new window, counters and rate start over.
        clock.Advance(TimeSpan.FromMinutes(50));
        await ReadAsync();
        Assert.Null(forecast.For(pool, prod));
    }
}
