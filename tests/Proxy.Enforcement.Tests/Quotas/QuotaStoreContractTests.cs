using Microsoft.Extensions.Time.Testing;
using QuotaProxy.Enforcement.Configuration;
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
        Assert.Equal(3, decision.Used);
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
        Assert.Equal(3, rejected.Used);
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
        Assert.Equal(0, rejected.Used);
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

    /// <summary>Debits one credit at a time until the first rejection; returns how many were admitted.</summary>
    private async Task<(int Admitted, QuotaDecision Rejection)> SpendAllAsync(PoolDefinition pool, string tenant)
    {
        for (var admitted = 0; ; admitted++)
        {
            var decision = await DebitAsync(pool.Debit(tenant, 1));
            if (!decision.Admitted)
            {
                return (admitted, decision);
            }
        }
    }

    [Fact]
    public async Task WorkedExample_ProdAlone_Reaches225AndNoMore()
    {
        var pool = TestPools.WorkedExample();

        var (admitted, rejection) = await SpendAllAsync(pool, "prod");

        Assert.Equal(225, admitted);
        Assert.Equal(QuotaLimitedBy.Reserved, rejection.LimitedBy);
        Assert.Equal("prod", rejection.LimitingNode!.Path);
        Assert.Equal(0, rejection.Remaining);
        Assert.Equal(225, rejection.PoolUsed);
    }

    [Fact]
    public async Task WorkedExample_AfterProdSpike_EachOtherTenantStillSpendsItsGuarantee()
    {
        var pool = TestPools.WorkedExample();
        await SpendAllAsync(pool, "prod");

        Assert.Equal(10, (await SpendAllAsync(pool, "test")).Admitted);
        Assert.Equal(10, (await SpendAllAsync(pool, "dev")).Admitted);
        var (e2e, last) = await SpendAllAsync(pool, "e2e");

        Assert.Equal(5, e2e);
        Assert.Equal(250, last.PoolUsed);
        Assert.Equal(QuotaLimitedBy.Pool, last.LimitedBy);
    }

    [Fact]
    public async Task WorkedExample_E2eOnAnIdleDay_GetsAtMost10()
    {
        var pool = TestPools.WorkedExample();

        var (admitted, rejection) = await SpendAllAsync(pool, "e2e");

        Assert.Equal(10, admitted);
        Assert.Equal(QuotaLimitedBy.Reserved, rejection.LimitedBy);
    }

    [Fact]
    public async Task WorkedExample_TestBorrowsAboveItsAllocation_ButNeverProdsShare()
    {
        var pool = TestPools.WorkedExample();

        // test (priority 2) may not take prod's unused 180, nor dev's and e2e's floors (10 + 5): 250 − 195 = 55.
        var (admitted, rejection) = await SpendAllAsync(pool, "test");

        Assert.Equal(55, admitted);
        Assert.Equal(QuotaLimitedBy.Reserved, rejection.LimitedBy);
        Assert.Equal(180, (await SpendAllAsync(pool, "prod")).Admitted);
    }

    private static readonly PoolDefinition Org = TestPools.Create("org", new PoolOptions
    {
        Limit = 100,
        Window = "1d",
        SoftLimit = 90,
        Tenants =
        {
            ["acme"] = new TenantOptions
            {
                Limit = 60,
                Tenants =
                {
                    ["search"] = new TenantOptions
                    {
                        Limit = 40,
                        SoftLimit = 5,
                        Tenants = { ["alice"] = new TenantOptions { Limit = 10, Overage = 3 }, ["bob"] = new TenantOptions() },
                    },
                },
            },
            ["globex"] = new TenantOptions { Limit = 50, Mode = QuotaMode.Shadow },
        },
    });

    [Fact]
    public async Task Debit_NestedTenant_ChargesEveryNodeUpToThePool()
    {
        await DebitAsync(Org.Debit("acme/search/alice", 4));
        var decision = await DebitAsync(Org.Debit("acme/search/bob", 30));

        Assert.True(decision.Admitted);
        Assert.Equal(30, decision.Used);
        Assert.Equal(34, decision.PoolUsed);
        Assert.Equal(40, decision.Limit);
        // search has 40 − 34 = 6 left, and bob is bounded by search.
        Assert.Equal(6, decision.Remaining);

        var rejected = await DebitAsync(Org.Debit("acme/search/bob", 7));
        Assert.False(rejected.Admitted);
        Assert.Equal(QuotaLimitedBy.Tenant, rejected.LimitedBy);
        Assert.Equal("acme/search", rejected.LimitingNode!.Path);
        Assert.Equal(34, rejected.PoolUsed);
    }

    [Fact]
    public async Task Debit_AboveLimitWithinOverage_AdmitsAndReportsTheOverageCredits()
    {
        var withinLimit = await DebitAsync(Org.Debit("acme/search/alice", 9));
        var overage = await DebitAsync(Org.Debit("acme/search/alice", 3));
        var beyond = await DebitAsync(Org.Debit("acme/search/alice", 2));

        Assert.Equal(0, withinLimit.OverageCredits);
        Assert.True(overage.Admitted);
        Assert.Equal(2, overage.OverageCredits);
        Assert.Equal(12, overage.Used);
        Assert.Equal(1, overage.Remaining);
        Assert.False(beyond.Admitted);
        Assert.Equal("acme/search/alice", beyond.LimitingNode!.Path);
    }

    [Fact]
    public async Task Debit_CrossingASoftLimit_IsAdmittedAndSaysSoOnce()
    {
        var below = await DebitAsync(Org.Debit("acme/search/bob", 5));
        var crossing = await DebitAsync(Org.Debit("acme/search/bob", 1));
        var after = await DebitAsync(Org.Debit("acme/search/alice", 1));

        Assert.Null(below.SoftLimitNode);
        Assert.True(crossing.Admitted);
        Assert.Equal("acme/search", crossing.SoftLimitNode!.Path);
        Assert.True(crossing.SoftLimitCrossed);
        Assert.Equal("acme/search", after.SoftLimitNode!.Path);
        Assert.False(after.SoftLimitCrossed);
    }

    [Fact]
    public async Task Debit_ShadowTenantOverItsLimit_IsAdmittedDebitedAndFlagged()
    {
        await DebitAsync(Org.Debit("globex", 50));
        var shadow = await DebitAsync(Org.Debit("globex", 5));

        Assert.True(shadow.Admitted);
        Assert.True(shadow.Shadow);
        Assert.Equal(QuotaLimitedBy.Tenant, shadow.LimitedBy);
        Assert.Equal("globex", shadow.LimitingNode!.Path);
        Assert.Equal(55, shadow.Used);
        Assert.Equal(0, shadow.Remaining);
    }

    [Fact]
    public async Task Debit_ShadowTenantUnderAnEnforcingPool_IsStillStoppedByThePool()
    {
        await DebitAsync(Org.Debit("acme/search/bob", 40));
        await DebitAsync(Org.Debit("globex", 58));
        var rejected = await DebitAsync(Org.Debit("globex", 3));

        Assert.False(rejected.Admitted);
        Assert.Equal(QuotaLimitedBy.Pool, rejected.LimitedBy);
        Assert.True(rejected.LimitingNode!.IsRoot);
        Assert.Equal(98, rejected.PoolUsed);
    }

    [Fact]
    public async Task Debit_ShadowPool_NeverRejects()
    {
        var pool = TestPools.Create("shadow", new PoolOptions
        {
            Limit = 3,
            Window = "1d",
            Mode = QuotaMode.Shadow,
            Tenants = { ["prod"] = new TenantOptions() },
        });

        var decisions = new List<QuotaDecision>();
        for (var i = 0; i < 5; i++)
        {
            decisions.Add(await DebitAsync(pool.Debit("prod", 1)));
        }

        Assert.All(decisions, d => Assert.True(d.Admitted));
        Assert.Equal([false, false, false, true, true], decisions.Select(d => d.Shadow));
        Assert.Equal(QuotaLimitedBy.Pool, decisions[^1].LimitedBy);
        Assert.Equal(5, decisions[^1].PoolUsed);
    }
}

public sealed class InProcessQuotaStoreTests : QuotaStoreContractTests
{
    protected override IQuotaStore CreateStore(FakeTimeProvider clock) => new InProcessQuotaStore(clock);
}
