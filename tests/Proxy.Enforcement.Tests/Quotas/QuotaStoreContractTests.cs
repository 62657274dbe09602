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
    private protected abstract IQuotaStore CreateStore(FakeTimeProvider clock);

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
    public async Task ReadUsage_ShowsEveryNodesCreditsForTheCurrentWindow_AndZeroOnceTheWindowHasMovedOn()
    {
        var before = await Store.ReadUsageAsync(Org, CancellationToken.None);
        await DebitAsync(Org.Debit("acme/search/alice", 4));
        await DebitAsync(Org.Debit("acme/search/bob", 5));
        await DebitAsync(Org.Debit("acme/search/bob", 100)); // rejected: charges nothing

        var usage = await Store.ReadUsageAsync(Org, CancellationToken.None);
        Clock.Advance(TimeSpan.FromDays(1));
        var nextDay = await Store.ReadUsageAsync(Org, CancellationToken.None);

        Assert.All(before.Counters.Values, value => Assert.Equal(0, value));
        Assert.Equal(9, usage.Used(Org.Root));
        Assert.Equal(9, usage.Used(Org.Nodes["acme"]));
        Assert.Equal(9, usage.Used(Org.Nodes["acme/search"]));
        Assert.Equal(4, usage.Used(Org.Nodes["acme/search/alice"]));
        Assert.Equal(5, usage.Used(Org.Nodes["acme/search/bob"]));
        // alice: 10 + 3 overage − 4; bob: what search has left (40 − 9); globex: its 50.
        Assert.Equal((9L, 31L, 50L), (usage.Available(Org.Nodes["acme/search/alice"]), usage.Available(Org.Nodes["acme/search/bob"]), usage.Available(Org.Nodes["globex"])));
        Assert.Equal(new DateTimeOffset(2030, 6, 14, 0, 0, 0, TimeSpan.Zero), usage.Window.Start);
        Assert.Equal(0, usage.ClosedUntilMs);
        Assert.All(nextDay.Counters.Values, value => Assert.Equal(0, value));
        Assert.Equal(new DateTimeOffset(2030, 6, 15, 0, 0, 0, TimeSpan.Zero), nextDay.Window.Start);
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

    private static PoolDefinition RatedPool(string window = "1h", long limit = 1000, string poolRate = "", long? poolBurst = null, QuotaMode tenantMode = QuotaMode.Enforce) =>
        TestPools.Create("rated", new PoolOptions
        {
            Limit = limit,
            Window = window,
            Rate = poolRate.Length == 0 ? null : poolRate,
            Burst = poolBurst,
            Tenants =
            {
                ["prod"] = new TenantOptions(),
                ["e2e"] = new TenantOptions { Rate = "10/s", Mode = tenantMode },
            },
        });

    [Fact]
    public async Task Debit_TenantOverItsRate_IsRejectedAsRateUntilTheNextIntervalAndDebitsNothing()
    {
        var pool = RatedPool();

        var first = await DebitAsync(pool.Debit("e2e", 1));
        Clock.Advance(TimeSpan.FromMilliseconds(40));
        var tooSoon = await DebitAsync(pool.Debit("e2e", 1));
        var prod = await DebitAsync(pool.Debit("prod", 1));
        Clock.Advance(TimeSpan.FromMilliseconds(60));
        var onTime = await DebitAsync(pool.Debit("e2e", 1));

        Assert.True(first.Admitted);
        Assert.False(tooSoon.Admitted);
        Assert.Equal(QuotaLimitedBy.Rate, tooSoon.LimitedBy);
        Assert.Equal("e2e", tooSoon.LimitingNode!.Path);
        Assert.Equal(60_000, tooSoon.RetryAfterMicros);
        Assert.Equal(1, tooSoon.SecondsToRetry);
        Assert.Equal(1, tooSoon.Used);
        Assert.True(prod.Admitted);
        Assert.True(onTime.Admitted);
        Assert.Equal(2, onTime.Used);
        Assert.Equal(3, onTime.PoolUsed);
    }

    [Fact]
    public async Task Debit_BurstStraddlingAWindowBoundary_NeverGetsTwiceTheLimitThrough()
    {
        // Ten credits a second by window and by rate (burst 5). A window alone lets 10 through just before
        // the boundary and 10 more just after it; the rate does not.
        var windowOnly = TestPools.Create("window-only", new PoolOptions { Limit = 10, Window = "1s", Tenants = { ["prod"] = new TenantOptions() } });
        var rated = RatedPool(window: "1s", limit: 10, poolRate: "10/s", poolBurst: 5);
        Clock.Advance(TimeSpan.FromMilliseconds(990));

        async Task<(int WindowOnly, int Rated, QuotaDecision LastRated)> FireTen()
        {
            int windowOnlyAdmitted = 0, ratedAdmitted = 0;
            QuotaDecision last = default;
            for (var i = 0; i < 10; i++)
            {
                windowOnlyAdmitted += (await DebitAsync(windowOnly.Debit("prod", 1))).Admitted ? 1 : 0;
                last = await DebitAsync(rated.Debit("prod", 1));
                ratedAdmitted += last.Admitted ? 1 : 0;
            }

            return (windowOnlyAdmitted, ratedAdmitted, last);
        }

        var before = await FireTen();
        Clock.Advance(TimeSpan.FromMilliseconds(20));
        var after = await FireTen();

        Assert.Equal((10, 10), (before.WindowOnly, after.WindowOnly));
        Assert.Equal(5, before.Rated);
        Assert.Equal(0, after.Rated);
        Assert.Equal(QuotaLimitedBy.Rate, after.LastRated.LimitedBy);
        Assert.True(after.LastRated.LimitingNode!.IsRoot);
        Assert.Equal(0, after.LastRated.Used);
    }

    [Fact]
    public async Task Debit_ShadowTenantOverItsRate_IsAdmittedAndFlagged()
    {
        var pool = RatedPool(tenantMode: QuotaMode.Shadow);

        await DebitAsync(pool.Debit("e2e", 1));
        var shadow = await DebitAsync(pool.Debit("e2e", 1));

        Assert.True(shadow.Admitted);
        Assert.True(shadow.Shadow);
        Assert.Equal(QuotaLimitedBy.Rate, shadow.LimitedBy);
        Assert.Equal(2, shadow.Used);
    }

    [Fact]
    public async Task Close_RejectsAsVendorUntilTheClosureEnds_ThenReopensByItself()
    {
        var nowMs = Clock.GetUtcNow().ToUnixTimeMilliseconds();
        await DebitAsync(Daily.Debit("prod", 1));

        await Store.CloseAsync(Daily, nowMs + 30_000, CancellationToken.None);
        var closed = await DebitAsync(Daily.Debit("test", 1));
        Clock.Advance(TimeSpan.FromSeconds(30));
        var reopened = await DebitAsync(Daily.Debit("test", 1));

        Assert.False(closed.Admitted);
        Assert.Equal(QuotaLimitedBy.Vendor, closed.LimitedBy);
        Assert.True(closed.LimitingNode!.IsRoot);
        Assert.Equal(30_000_000, closed.RetryAfterMicros);
        Assert.Equal(30, closed.SecondsToRetry);
        Assert.Equal(1, closed.PoolUsed);
        Assert.True(reopened.Admitted);
        Assert.Equal(2, reopened.PoolUsed);
    }

    [Fact]
    public async Task Reopen_EndsAClosureNow_AndSaysWhatItEnded()
    {
        var nowMs = Clock.GetUtcNow().ToUnixTimeMilliseconds();
        await DebitAsync(Daily.Debit("prod", 1));
        await Store.CloseAsync(Daily, nowMs + 3_600_000, CancellationToken.None);

        var closed = await DebitAsync(Daily.Debit("test", 1));
        var ended = await Store.ReopenAsync(Daily, CancellationToken.None);
        var reopened = await DebitAsync(Daily.Debit("test", 1));
        var again = await Store.ReopenAsync(Daily, CancellationToken.None);

        Assert.Equal(QuotaLimitedBy.Vendor, closed.LimitedBy);
        Assert.Equal(nowMs + 3_600_000, ended);
        Assert.True(reopened.Admitted);
        Assert.Equal(2, reopened.PoolUsed);
        Assert.Equal(0, again);
    }

    [Fact]
    public async Task Close_PastTheWindowsEnd_StaysClosedInTheNextWindow_AndKeepsTheLaterClosure()
    {
        var pool = TestPools.Create("minute", 100, "1m", "UTC", ("prod", null));
        var nowMs = Clock.GetUtcNow().ToUnixTimeMilliseconds();
        await DebitAsync(pool.Debit("prod", 1));

        await Store.CloseAsync(pool, nowMs + 90_000, CancellationToken.None);
        await Store.CloseAsync(pool, nowMs + 10_000, CancellationToken.None);
        Clock.Advance(TimeSpan.FromSeconds(60));
        var nextWindow = await DebitAsync(pool.Debit("prod", 1));
        Clock.Advance(TimeSpan.FromSeconds(30));
        var reopened = await DebitAsync(pool.Debit("prod", 1));

        Assert.False(nextWindow.Admitted);
        Assert.Equal(QuotaLimitedBy.Vendor, nextWindow.LimitedBy);
        Assert.Equal(30_000_000, nextWindow.RetryAfterMicros);
        Assert.Equal(0, nextWindow.PoolUsed);
        Assert.True(reopened.Admitted);
        Assert.Equal(1, reopened.PoolUsed);
    }

    [Fact]
    public async Task Debit_RouteOnTwoPools_AdmitsOnlyWhenBothAdmit_AndDebitsBothOrNeither()
    {
        var daily = TestPools.Create("route-daily", 3, "1d", "UTC", ("prod", null));
        var second = TestPools.Create("route-second", 2, "1s", "UTC", ("prod", null));
        QuotaDebit[] Route() => [daily.Debit("prod", 1), second.Debit("prod", 1)];

        var decisions = new List<RouteDecision>();
        for (var i = 0; i < 3; i++)
        {
            decisions.Add(await Store.DebitAsync(Route(), CancellationToken.None));
        }

        Clock.Advance(TimeSpan.FromSeconds(1));
        var nextSecond = await Store.DebitAsync(Route(), CancellationToken.None);
        var dailyDry = await Store.DebitAsync(Route(), CancellationToken.None);

        Assert.Equal([true, true, false], decisions.Select(d => d.Admitted));
        var bySecond = decisions[2];
        Assert.Equal(1, bySecond.LimitingIndex);
        Assert.Equal(QuotaLimitedBy.Pool, bySecond.Pools[1].LimitedBy);
        Assert.True(bySecond.Pools[0].Admitted);
        Assert.Equal(2, bySecond.Pools[0].PoolUsed);
        Assert.Equal(1, bySecond.Pools[0].Remaining);
        Assert.Equal(1, bySecond.ReportedIndex);

        Assert.True(nextSecond.Admitted);
        Assert.Equal((3, 1), (nextSecond.Pools[0].PoolUsed, nextSecond.Pools[1].PoolUsed));
        Assert.Equal(0, nextSecond.ReportedIndex);

        Assert.False(dailyDry.Admitted);
        Assert.Equal(0, dailyDry.LimitingIndex);
        Assert.Equal(QuotaLimitedBy.Pool, dailyDry.Pools[0].LimitedBy);
        Assert.True(dailyDry.Pools[1].Admitted);
        Assert.Equal(1, dailyDry.Pools[1].PoolUsed);
    }

    private static readonly PoolDefinition Leased = TestPools.Create("leased", new PoolOptions
    {
        Limit = 100,
        Window = "1d",
        Tenants = { ["prod"] = new TenantOptions(), ["e2e"] = new TenantOptions { MaxInFlight = 2 } },
    });

    [Fact]
    public async Task Debit_NodeAtItsMaxInFlight_RejectsAsConcurrencyUntilALeaseIsReleased()
    {
        var first = await Store.DebitAsync([Leased.Debit("e2e", 1)], CancellationToken.None);
        var second = await Store.DebitAsync([Leased.Debit("e2e", 1)], CancellationToken.None);
        var third = await Store.DebitAsync([Leased.Debit("e2e", 1)], CancellationToken.None);
        var prod = await Store.DebitAsync([Leased.Debit("prod", 1)], CancellationToken.None);
        await Store.ReleaseAsync(first.Lease!, CancellationToken.None);
        var afterRelease = await Store.DebitAsync([Leased.Debit("e2e", 1)], CancellationToken.None);

        Assert.True(first.Admitted && second.Admitted);
        Assert.NotEqual(first.Lease!.Id, second.Lease!.Id);
        Assert.False(third.Admitted);
        Assert.Null(third.Lease);
        Assert.Equal(QuotaLimitedBy.Concurrency, third.Pools[0].LimitedBy);
        Assert.Equal("e2e", third.Pools[0].LimitingNode!.Path);
        Assert.Equal(1, third.Pools[0].SecondsToRetry);
        Assert.Equal(2, third.Pools[0].Used);
        Assert.True(prod.Admitted);
        Assert.Null(prod.Lease);
        Assert.True(afterRelease.Admitted);
        Assert.Equal(3, afterRelease.Pools[0].Used);
    }

    [Fact]
    public async Task Renew_KeepsALeaseAlivePastItsTtl_WhileAReleasedOneStaysGone()
    {
        var first = await Store.DebitAsync([Leased.Debit("e2e", 1)], CancellationToken.None);
        var released = await Store.DebitAsync([Leased.Debit("e2e", 1)], CancellationToken.None);
        await Store.ReleaseAsync(released.Lease!, CancellationToken.None);
        Clock.Advance(TimeSpan.FromSeconds(90));
        await Store.RenewAsync(first.Lease!, CancellationToken.None);
        await Store.RenewAsync(released.Lease!, CancellationToken.None);
        Clock.Advance(TimeSpan.FromSeconds(90)); // past the first lease's own TTL of 2 minutes, within its renewal

        var second = await Store.DebitAsync([Leased.Debit("e2e", 1)], CancellationToken.None);
        var third = await Store.DebitAsync([Leased.Debit("e2e", 1)], CancellationToken.None);

        Assert.True(second.Admitted);
        Assert.Equal(QuotaLimitedBy.Concurrency, third.Pools[0].LimitedBy);
    }

    [Fact]
    public async Task Debit_LeaseNeverReleased_ExpiresByItselfAfterTheLeaseTtl()
    {
        await Store.DebitAsync([Leased.Debit("e2e", 1)], CancellationToken.None);
        await Store.DebitAsync([Leased.Debit("e2e", 1)], CancellationToken.None);

        Clock.Advance(new StoreOptions().LeaseTtl - TimeSpan.FromMilliseconds(1));
        var stillHeld = await Store.DebitAsync([Leased.Debit("e2e", 1)], CancellationToken.None);
        Clock.Advance(TimeSpan.FromMilliseconds(1));
        var expired = await Store.DebitAsync([Leased.Debit("e2e", 1)], CancellationToken.None);

        Assert.Equal(QuotaLimitedBy.Concurrency, stillHeld.Pools[0].LimitedBy);
        Assert.True(expired.Admitted);
    }

    [Fact]
    public async Task Refund_GivesTheCreditsBackToEveryNodeAndAggregate_AsIfTheDebitNeverHappened()
    {
        var pool = TestPools.WorkedExample("refunded");
        await DebitAsync(pool.Debit("prod", 180));
        QuotaDebit[] test = [pool.Debit("test", 25)];
        var debited = await Store.DebitAsync(test, CancellationToken.None);

        var refunded = await Store.RefundAsync(test, debited, null, CancellationToken.None);
        var prodAfter = await DebitAsync(pool.Debit("prod", 45));
        var prodBeyond = await DebitAsync(pool.Debit("prod", 1));

        Assert.True(debited.Admitted);
        Assert.Equal(1, refunded);
        // With test's 25 back, prod again reaches exactly 225 and no more: every aggregate moved back.
        Assert.True(prodAfter.Admitted);
        Assert.Equal(225, prodAfter.PoolUsed);
        Assert.Equal(QuotaLimitedBy.Reserved, prodBeyond.LimitedBy);
    }

    [Fact]
    public async Task Refund_AfterTheWindowMovedOn_LeavesTheNewWindowAlone()
    {
        var pool = TestPools.Create("refund-minute", 10, "1m", "UTC", ("prod", null));
        QuotaDebit[] debit = [pool.Debit("prod", 4)];
        var debited = await Store.DebitAsync(debit, CancellationToken.None);
        Clock.Advance(TimeSpan.FromMinutes(1));
        var fresh = await DebitAsync(pool.Debit("prod", 2));

        var refunded = await Store.RefundAsync(debit, debited, null, CancellationToken.None);
        var after = await DebitAsync(pool.Debit("prod", 1));

        Assert.Equal(0, refunded);
        Assert.Equal(2, fresh.PoolUsed);
        Assert.Equal(3, after.PoolUsed);
    }

    [Fact]
    public async Task Debit_RetryUnderAVendorIdempotentKey_IsFreeForItsReplays_ThenChargedLikeAnyRequest_AndAnotherRequestUnderTheKeyIsRefused()
    {
        var pool = TestPools.Create("idempotent", 5, "1m", "UTC", ("prod", null), ("test", null));
        var key = new UsageContext("quotes", "r1", new IdempotencyClaim("order-42", Fingerprint: 7, MaxReplays: 2));
        var otherRequest = new UsageContext("quotes", "r2", new IdempotencyClaim("order-42", Fingerprint: 8, MaxReplays: 2));
        ValueTask<RouteDecision> Send(string tenant, long cost, UsageContext? usage) => Store.DebitAsync([pool.Debit(tenant, cost)], usage, CancellationToken.None);

        var first = await Send("prod", 2, key);
        var fill = await Send("test", 3, null);
        var replays = new[] { await Send("prod", 2, key), await Send("prod", 2, key) };
        var pastItsReplays = await Send("prod", 2, key);
        var conflict = await Send("prod", 2, otherRequest);
        var otherTenantSameKey = await Send("test", 2, key);
        Clock.Advance(TimeSpan.FromMinutes(1));
        var nextWindow = await Send("prod", 2, key);

        Assert.Equal((true, false, 2L), (first.Admitted, first.Pools[0].Replayed, first.Pools[0].Used));
        Assert.Equal(5, fill.Pools[0].PoolUsed);
        Assert.All(replays, replay => Assert.Equal((true, true, 2L, 5L, 0L), (replay.Admitted, replay.Pools[0].Replayed, replay.Pools[0].Used, replay.Pools[0].PoolUsed, replay.Pools[0].OverageCredits)));
        // The third retry is charged like a new request, and the pool is dry.
        Assert.Equal((false, false, QuotaLimitedBy.Pool), (pastItsReplays.Admitted, pastItsReplays.Pools[0].Replayed, pastItsReplays.Pools[0].LimitedBy));
        Assert.Equal((false, QuotaLimitedBy.IdempotencyConflict), (conflict.Admitted, conflict.Pools[0].LimitedBy));
        Assert.False(otherTenantSameKey.Admitted);
        Assert.Equal((true, false, 2L), (nextWindow.Admitted, nextWindow.Pools[0].Replayed, nextWindow.Pools[0].PoolUsed));
    }

    [Fact]
    public async Task Debit_Replay_StillPassesTheClosureAndMaxInFlight_AndHoldsALeaseLikeAnyRequest()
    {
        var key = new UsageContext("quotes", "r1", new IdempotencyClaim("order-7", Fingerprint: 99, MaxReplays: 3));
        var first = await Store.DebitAsync([Leased.Debit("e2e", 1)], key, CancellationToken.None);
        var replay = await Store.DebitAsync([Leased.Debit("e2e", 1)], key, CancellationToken.None);
        // Both slots of e2e's MaxInFlight are held: a replay is refused like any request.
        var replayAtMaxInFlight = await Store.DebitAsync([Leased.Debit("e2e", 1)], key, CancellationToken.None);
        await Store.ReleaseAsync(first.Lease!, CancellationToken.None);
        await Store.ReleaseAsync(replay.Lease!, CancellationToken.None);
        await Store.CloseAsync(Leased, Clock.GetUtcNow().ToUnixTimeMilliseconds() + 60_000, CancellationToken.None);
        var replayWhileClosed = await Store.DebitAsync([Leased.Debit("e2e", 1)], key, CancellationToken.None);

        Assert.True(first.Admitted);
        Assert.True(replay.Admitted && replay.Pools[0].Replayed);
        Assert.NotNull(replay.Lease);
        Assert.Equal(1, replay.Pools[0].Used);
        Assert.Equal((false, QuotaLimitedBy.Concurrency), (replayAtMaxInFlight.Admitted, replayAtMaxInFlight.Pools[0].LimitedBy));
        Assert.Equal((false, QuotaLimitedBy.Vendor), (replayWhileClosed.Admitted, replayWhileClosed.Pools[0].LimitedBy));
    }
}

public sealed class InProcessQuotaStoreTests : QuotaStoreContractTests
{
    private protected override IQuotaStore CreateStore(FakeTimeProvider clock) => new InProcessQuotaStore(clock);
}
