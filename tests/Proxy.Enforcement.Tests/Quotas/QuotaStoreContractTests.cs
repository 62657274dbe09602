using Microsoft.Extensions.Time.Testing;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Tests.Quotas;

/// <summary>
/// The rule every counter store must follow, run against each implementation (the in-process store here,
/// the Lua script on real Redis in <c>RedisQuotaStoreContractTests</c>).
/// </summary>
public abstract class QuotaStoreContractTests
{
    protected FakeTimeProvider Clock { get; } = new(new DateTimeOffset(2030, 6, 14, 10, 0, 0, TimeSpan.Zero));

    private IQuotaStore? _store;

    private IQuotaStore Store => _store ??= CreateStore(Clock);

    /// <summary>The store under test, reading <paramref name="clock"/> for the time.</summary>
    protected abstract IQuotaStore CreateStore(FakeTimeProvider clock);

    private static readonly PoolDefinition Daily = TestPools.Create("daily", 10, "1d", "UTC", ("prod", null), ("test", 4));

    private ValueTask<QuotaDecision> DebitAsync(QuotaDebit debit) => Store.DebitAsync(debit, CancellationToken.None);

    [Fact]
    public async Task Debit_WithinLimits_AdmitsAndCountsTenantAndPool()
    {
        var decision = await DebitAsync(Daily.Debit("test", 3));

        Assert.True(decision.Admitted);
        Assert.Equal(QuotaLimitedBy.None, decision.LimitedBy);
        Assert.Equal(3, decision.TenantUsed);
        Assert.Equal(3, decision.PoolUsed);
        Assert.Equal(1, decision.Remaining);
        Assert.Equal(new DateTimeOffset(2030, 6, 14, 0, 0, 0, TimeSpan.Zero), decision.Window.Start);
        Assert.Equal(new DateTimeOffset(2030, 6, 15, 0, 0, 0, TimeSpan.Zero), decision.Window.End);
    }

    [Fact]
    public async Task Debit_CostAboveTenantRemaining_RejectsAndDebitsNeither()
    {
        await DebitAsync(Daily.Debit("test", 3));

        var rejected = await DebitAsync(Daily.Debit("test", 2));
        var prod = await DebitAsync(Daily.Debit("prod", 1));

        Assert.False(rejected.Admitted);
        Assert.Equal(QuotaLimitedBy.Tenant, rejected.LimitedBy);
        Assert.Equal(3, rejected.TenantUsed);
        Assert.Equal(3, rejected.PoolUsed);
        Assert.Equal(1, rejected.Remaining);
        Assert.Equal(4, prod.PoolUsed);
    }

    [Fact]
    public async Task Debit_CostAbovePoolRemaining_RejectsAsPool()
    {
        await DebitAsync(Daily.Debit("prod", 8));

        var rejected = await DebitAsync(Daily.Debit("test", 3));

        Assert.False(rejected.Admitted);
        Assert.Equal(QuotaLimitedBy.Pool, rejected.LimitedBy);
        Assert.Equal(0, rejected.TenantUsed);
        Assert.Equal(8, rejected.PoolUsed);
        Assert.Equal(2, rejected.Remaining);
    }

    [Fact]
    public async Task Debit_ExactlyToTheLimit_AdmitsThenRejectsTheNextCredit()
    {
        var last = await DebitAsync(Daily.Debit("prod", 10));
        var next = await DebitAsync(Daily.Debit("prod", 1));

        Assert.True(last.Admitted);
        Assert.Equal(0, last.Remaining);
        Assert.False(next.Admitted);
        Assert.Equal(10, next.PoolUsed);
    }

    [Fact]
    public async Task Debit_CostAboveEveryLimit_RejectsEvenInAFreshWindow()
    {
        var decision = await DebitAsync(Daily.Debit("test", 5));

        Assert.False(decision.Admitted);
        Assert.Equal(QuotaLimitedBy.Tenant, decision.LimitedBy);
        Assert.Equal(0, decision.PoolUsed);
    }

    [Fact]
    public async Task Debit_AfterAShortWindowEnds_StartsFromZero()
    {
        var minute = TestPools.Create("minute", 5, "1m", "UTC", ("prod", null));
        Clock.SetUtcNow(new DateTimeOffset(2030, 6, 14, 10, 0, 59, 500, TimeSpan.Zero));
        await DebitAsync(minute.Debit("prod", 5));
        var full = await DebitAsync(minute.Debit("prod", 1));

        Clock.Advance(TimeSpan.FromMilliseconds(500));
        var fresh = await DebitAsync(minute.Debit("prod", 2));

        Assert.False(full.Admitted);
        Assert.Equal(1, full.SecondsToReset);
        Assert.True(fresh.Admitted);
        Assert.Equal(2, fresh.PoolUsed);
        Assert.Equal(new DateTimeOffset(2030, 6, 14, 10, 1, 0, TimeSpan.Zero), fresh.Window.Start);
    }

    [Fact]
    public async Task Debit_DayInNewYork_RollsOverAtLocalMidnightNotUtc()
    {
        var newYork = TestPools.Create("ny", 3, "1d", "America/New_York", ("prod", null));
        Clock.SetUtcNow(new DateTimeOffset(2030, 6, 14, 23, 59, 0, TimeSpan.Zero)); // 19:59 EDT
        await DebitAsync(newYork.Debit("prod", 3));

        Clock.SetUtcNow(new DateTimeOffset(2030, 6, 15, 0, 1, 0, TimeSpan.Zero)); // UTC midnight passed, New York's has not
        var sameDay = await DebitAsync(newYork.Debit("prod", 1));
        Clock.SetUtcNow(new DateTimeOffset(2030, 6, 15, 4, 0, 0, TimeSpan.Zero)); // 00:00 EDT
        var nextDay = await DebitAsync(newYork.Debit("prod", 1));

        Assert.False(sameDay.Admitted);
        Assert.Equal(new DateTimeOffset(2030, 6, 15, 4, 0, 0, TimeSpan.Zero), sameDay.Window.End);
        Assert.True(nextDay.Admitted);
        Assert.Equal(1, nextDay.PoolUsed);
    }
}

public sealed class InProcessQuotaStoreTests : QuotaStoreContractTests
{
    protected override IQuotaStore CreateStore(FakeTimeProvider clock) => new InProcessQuotaStore(clock);
}
