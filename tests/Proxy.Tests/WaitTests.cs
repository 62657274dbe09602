using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using Dapper;
using Npgsql;
using QuotaProxy.Enforcement.Redis;
using QuotaProxy.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace QuotaProxy.Tests;

/// <summary>
/// Waiting for capacity (a pool's <c>Wait</c>) through the real proxy on real Redis: a rate, a MaxInFlight and
/// a priority across two replicas, never longer than MaxWait, never more than MaxQueued, and gone when the
/// caller leaves. What the vendor receives, and when, is the evidence that no limit is passed; each test ends
/// with the invariant, per tenant: Redis's counter = the ledger's net credits = the vendor's calls (cost 1).
/// </summary>
[Collection(LedgerCollection.Name)]
public sealed class WaitTests(RedisFixture redis, PostgresFixture postgres)
{
    private static readonly string[] Tenants = ["prod", "test", "dev", "e2e"];

    private string _ledger = "";

    /// <summary>The test's own ledger database, made on first use.</summary>
    private async Task<string> LedgerAsync() => _ledger = _ledger.Length > 0 ? _ledger : await postgres.NewDatabaseAsync();

    private async Task<TestProxyConfig> ConfigAsync(VendorServer vendor, string prefix, string maxWait, int maxQueued = 1000) =>
        Config(vendor, prefix, maxWait, maxQueued).Set("Quota:Ledger:ConnectionString", await LedgerAsync()).Set("Quota:Ledger:PollInterval", "00:00:00.050");

    /// <summary>
    /// Per tenant, once the flushers have caught up: Redis's counter = the ledger's net credits = the vendor's
    /// calls (each tenant calls its own path, <c>/quotes/&lt;tenant&gt;</c>, and every call costs 1).
    /// </summary>
    private async Task AssertInvariantAsync(string prefix, VendorServer vendor)
    {
        var keys = new RedisKeys(prefix);
        var seen = await Poll.UntilAsync(
            "Redis counters, ledger net credits and vendor calls to agree per tenant",
            async () =>
            {
                var counters = (await redis.Connection.GetDatabase().HashGetAllAsync(keys.PoolUsage("daily"))).ToDictionary(e => e.Name.ToString(), e => (long)e.Value);
                await using var connection = new NpgsqlConnection(_ledger);
                Dictionary<string, long> net;
                try
                {
                    net = (await connection.QueryAsync<(string Tenant, long Net)>("SELECT tenant, sum(credits)::bigint FROM usage_events GROUP BY tenant")).ToDictionary(r => r.Tenant, r => r.Net);
                }
                catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
                {
                    net = [];
                }

                return Tenants.Select(t => (Tenant: t, Redis: counters.GetValueOrDefault("t:" + t), Ledger: net.GetValueOrDefault(t), Vendor: (long)vendor.Calls.Count(c => c.RequestMessage!.Path == "/" + t))).ToList();
            },
            tallies => tallies.All(t => t.Redis == t.Ledger && t.Ledger == t.Vendor),
            TimeSpan.FromSeconds(30));
        Assert.All(seen, t => Assert.Equal(t.Vendor, t.Redis));
    }

    private TestProxyConfig Config(VendorServer vendor, string prefix, string maxWait, int maxQueued = 1000) => new TestProxyConfig(vendor.Url)
        .Pool("daily", 1000, "1d", "UTC", ("prod", null), ("test", null), ("dev", null), ("e2e", null))
        .Route("quotes", pool: "daily", cost: 1)
        .ApiKey("prod-key", "prod")
        .ApiKey("test-key", "test")
        .ApiKey("dev-key", "dev")
        .ApiKey("e2e-key", "e2e")
        .Redis(redis.ConnectionString, prefix, timeout: TimeSpan.FromMilliseconds(50)) // the default store timeout
        .Set("Quota:Pools:daily:Wait:MaxWait", maxWait)
        .Set("Quota:Pools:daily:Wait:MaxQueued", maxQueued.ToString(CultureInfo.InvariantCulture));

    /// <summary>When each call reached the vendor, in order.</summary>
    private static List<DateTime> Arrivals(VendorServer vendor) => [.. vendor.Calls.Select(c => c.RequestMessage!.DateTime).Order()];

    [Fact]
    public async Task ARateLimitedRequest_WaitsForItsNextCredit_AndOneThatCannotFitWithinMaxWait_Gets429AtOnce()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        await using var proxy = await ProxyInstance.StartAsync((await ConfigAsync(vendor, prefix, "00:00:02"))
            .Set("Quota:Pools:daily:Tenants:prod:Rate", "2/s")
            .Set("Quota:Pools:daily:Tenants:test:Rate", "1/m"));

        var watch = Stopwatch.StartNew();
        var statuses = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => proxy.StatusAsync("prod-key", "/quotes/prod")));
        var waited = watch.Elapsed;
        var first = await proxy.StatusAsync("test-key", "/quotes/test");
        watch.Restart();
        var second = await proxy.StatusAsync("test-key", "/quotes/test");
        var refusedAfter = watch.Elapsed;

        // prod's three got through, a credit every half second: the vendor saw them spaced by the rate.
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK], statuses);
        var arrivals = Arrivals(vendor);
        Assert.All(arrivals.Zip(arrivals.Skip(1)).Take(2), pair => Assert.True(pair.Second - pair.First >= TimeSpan.FromMilliseconds(450), $"{pair.First:O} then {pair.Second:O}"));
        Assert.InRange(waited, TimeSpan.FromMilliseconds(900), TimeSpan.FromSeconds(2));
        // test's next credit is a minute away, beyond its MaxWait of 2 s: refused at once.
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.TooManyRequests), (first, second));
        Assert.True(refusedAfter < TimeSpan.FromMilliseconds(500), $"refused after {refusedAfter.TotalMilliseconds} ms");
        var page = await proxy.Client.GetStringAsync("/metrics");
        Assert.Contains("quota_proxy_requests_total{route=\"quotes\",pool=\"daily\",tenant=\"prod\",outcome=\"waited\"} 2", page, StringComparison.Ordinal);
        Assert.Contains("quota_proxy_wait_duration_seconds_count{pool=\"daily\",outcome=\"admitted\"} 2", page, StringComparison.Ordinal);
        await AssertInvariantAsync(prefix, vendor);
    }

    [Fact]
    public async Task MaxInFlight_TheSecondWaitsForTheFirstToFinish_AndOneMoreThanMaxQueued_Gets429AtOnce()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        vendor.Server.Reset();
        vendor.Server.Given(Request.Create().UsingGet()).RespondWith(Response.Create().WithStatusCode(200).WithDelay(TimeSpan.FromMilliseconds(400)));
        await using var proxy = await ProxyInstance.StartAsync((await ConfigAsync(vendor, prefix, "00:00:03", maxQueued: 1))
            .Set("Quota:Pools:daily:Tenants:dev:MaxInFlight", "1"));

        var watch = Stopwatch.StartNew();
        var first = proxy.StatusAsync("dev-key", "/quotes/dev");
        await Task.Delay(100);
        var second = proxy.StatusAsync("dev-key", "/quotes/dev");
        await Task.Delay(100);
        var third = await proxy.StatusAsync("dev-key", "/quotes/dev");
        var thirdAfter = watch.Elapsed;

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (await first, await second));
        // The queue held one: the third was refused at once, while the first was still at the vendor.
        Assert.Equal(HttpStatusCode.TooManyRequests, third);
        Assert.True(thirdAfter < TimeSpan.FromMilliseconds(400), $"refused after {thirdAfter.TotalMilliseconds} ms");
        // Never two at the vendor at once: the second arrived after the first's 400 ms there.
        var arrivals = Arrivals(vendor);
        Assert.Equal(2, arrivals.Count);
        Assert.True(arrivals[1] - arrivals[0] >= TimeSpan.FromMilliseconds(390), $"{arrivals[0]:O} then {arrivals[1]:O}");
        await AssertInvariantAsync(prefix, vendor);
    }

    [Fact]
    public async Task AWaiterThatNeverGetsCapacity_Gets429AtMaxWait_NotLater()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        vendor.Server.Reset();
        vendor.Server.Given(Request.Create().UsingGet()).RespondWith(Response.Create().WithStatusCode(200).WithDelay(TimeSpan.FromSeconds(3)));
        await using var proxy = await ProxyInstance.StartAsync((await ConfigAsync(vendor, prefix, "00:00:01"))
            .Set("Quota:Pools:daily:Tenants:test:MaxInFlight", "1"));

        var slow = proxy.StatusAsync("test-key", "/quotes/test");
        await Task.Delay(200);
        var watch = Stopwatch.StartNew();
        var waiting = await proxy.StatusAsync("test-key", "/quotes/test");
        var waited = watch.Elapsed;

        Assert.Equal(HttpStatusCode.TooManyRequests, waiting);
        Assert.InRange(waited, TimeSpan.FromMilliseconds(950), TimeSpan.FromMilliseconds(1500));
        Assert.Equal(HttpStatusCode.OK, await slow);
        Assert.Single(vendor.Calls);
        Assert.Contains("quota_proxy_wait_duration_seconds_count{pool=\"daily\",outcome=\"timed_out\"} 1", await proxy.Client.GetStringAsync("/metrics"), StringComparison.Ordinal);
        await AssertInvariantAsync(prefix, vendor);
    }

    [Fact]
    public async Task ACallerThatLeavesWhileWaiting_LeavesTheQueue_AndIsNeverChargedOrForwarded()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        await using var proxy = await ProxyInstance.StartAsync((await ConfigAsync(vendor, prefix, "00:00:10")).Set("Quota:Pools:daily:Tenants:e2e:Rate", "12/m"));

        Assert.Equal(HttpStatusCode.OK, await proxy.StatusAsync("e2e-key", "/quotes/e2e"));
        using (var impatient = new HttpClient { BaseAddress = proxy.Address, Timeout = TimeSpan.FromMilliseconds(500) })
        using (var message = new HttpRequestMessage(HttpMethod.Get, "/quotes/e2e"))
        {
            message.Headers.Add("X-Api-Key", "e2e-key");
            await Assert.ThrowsAsync<TaskCanceledException>(() => impatient.SendAsync(message));
        }

        await Poll.UntilAsync(
            "the queue to be empty",
            async () => (await proxy.Client.GetStringAsync("/metrics")).Contains("quota_proxy_waiting_requests{pool=\"daily\"} 0", StringComparison.Ordinal),
            empty => empty,
            TimeSpan.FromSeconds(2));
        // Past the moment its credit would have come (5 s after the first): still one call, one credit.
        await Task.Delay(TimeSpan.FromSeconds(5));
        Assert.Single(vendor.Calls);
        Assert.Equal(1, (long)await redis.Connection.GetDatabase().HashGetAsync(new RedisKeys(prefix).PoolUsage("daily"), "t:e2e"));
        Assert.Contains("quota_proxy_wait_duration_seconds_count{pool=\"daily\",outcome=\"client_closed\"} 1", await proxy.Client.GetStringAsync("/metrics"), StringComparison.Ordinal);
        await AssertInvariantAsync(prefix, vendor);
    }

    [Fact]
    public async Task AcrossTwoReplicas_AHigherPriorityThatCameLater_IsAdmittedFirst()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await LedgerAsync();
        TestProxyConfig Shared() => Config(vendor, prefix, "00:00:05")
            .Set("Quota:Ledger:ConnectionString", ledger)
            .Set("Quota:Ledger:PollInterval", "00:00:00.050")
            .Set("Quota:Pools:daily:Rate", "1/s")
            .Set("Quota:Pools:daily:Tenants:prod:Priority", "1")
            .Set("Quota:Pools:daily:Tenants:dev:Priority", "3");
        await using var a = await ProxyInstance.StartAsync(Shared());
        await using var b = await ProxyInstance.StartAsync(Shared());
        var order = new ConcurrentQueue<string>();

        // The pool's one credit a second is spent; then dev waits on a, and prod, a little later, on b.
        Assert.Equal(HttpStatusCode.OK, await a.StatusAsync("test-key", "/quotes/test"));
        var dev = Task.Run(async () => { var status = await a.StatusAsync("dev-key", "/quotes/dev"); order.Enqueue("dev"); return status; });
        await Task.Delay(150);
        var prod = Task.Run(async () => { var status = await b.StatusAsync("prod-key", "/quotes/prod"); order.Enqueue("prod"); return status; });

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (await prod, await dev));
        Assert.Equal(["prod", "dev"], order);
        var arrivals = Arrivals(vendor);
        Assert.Equal(3, arrivals.Count);
        Assert.All(arrivals.Zip(arrivals.Skip(1)), pair => Assert.True(pair.Second - pair.First >= TimeSpan.FromMilliseconds(950), $"{pair.First:O} then {pair.Second:O}"));
        await AssertInvariantAsync(prefix, vendor);
    }
}
