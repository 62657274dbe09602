using System.Globalization;
using System.Net;
using Dapper;
using Npgsql;
using QuotaProxy.Enforcement.Redis;
using QuotaProxy.Testing;
using Xunit.Abstractions;

namespace QuotaProxy.Tests;

/// <summary>
/// Credit leases (a pool's <c>Lease</c>) through real replicas on one Redis, with the ledger on PostgreSQL
/// and production's default store timeout (50 ms). A lease is a debit of a block, spent locally: these
/// tests hold it to exact mode's promise (never more admitted than the allowance; every call billed once)
/// and end with the invariant, per tenant: Redis's counter = the ledger's net credits = the vendor's calls
/// × cost, once the leases are back.
/// </summary>
[Collection(LedgerCollection.Name)]
public sealed class LeaseTests(RedisFixture redis, PostgresFixture postgres, ITestOutputHelper output)
{
    private static readonly string[] Tenants = ["prod", "test"];
    private static readonly (string Route, long Cost)[] Routes = [("one", 1), ("two", 2), ("five", 5)];

    private TestProxyConfig Config(VendorServer vendor, string prefix, string ledger, long limit, long maxCredits, string ttl = "00:00:01", string? redisConnection = null)
    {
        var config = new TestProxyConfig(vendor.Url)
            .Pool("shared", limit, "1d", "UTC", ("prod", null), ("test", null))
            .Set("Quota:Pools:shared:Lease:MaxCredits", maxCredits.ToString(CultureInfo.InvariantCulture))
            .Set("Quota:Pools:shared:Lease:Ttl", ttl)
            .ApiKey("prod-key", "prod")
            .ApiKey("test-key", "test")
            .Redis(redisConnection ?? redis.ConnectionString, prefix, timeout: TimeSpan.FromMilliseconds(50)) // the default store timeout
            .Set("Quota:Ledger:ConnectionString", ledger)
            .Set("Quota:Ledger:PollInterval", "00:00:00.050")
            // A replica stopped between reading a batch and committing it leaves the batch pending: another takes it over after this.
            .Set("Quota:Ledger:ClaimIdle", "00:00:01");
        foreach (var (route, cost) in Routes)
        {
            config.Route(route, pool: "shared", cost: cost);
        }

        return config;
    }

    /// <summary>
    /// Per tenant: Redis's counter, the ledger's net credits (every event: what the counters must hold), the
    /// ledger's billed credits (without resets and the credits of voided leases), and the credits of the vendor's calls (callers ask for <c>/&lt;route&gt;/&lt;tenant&gt;/&lt;route&gt;/…</c>; the vendor sees the path without the route's prefix).</summary>
    private async Task<IReadOnlyList<(string Tenant, long Redis, long Ledger, long Billed, long Vendor)>> TalliesAsync(string prefix, string ledger, VendorServer vendor, StackExchange.Redis.IConnectionMultiplexer? store = null)
    {
        var counters = (await (store ?? redis.Connection).GetDatabase().HashGetAllAsync(new RedisKeys(prefix).PoolUsage("shared"))).ToDictionary(e => e.Name.ToString(), e => (long)e.Value);
        await using var connection = new NpgsqlConnection(ledger);
        Dictionary<string, (long Net, long Billed)> ledgers;
        try
        {
            ledgers = (await connection.QueryAsync<(string Tenant, long Net, long Billed)>(
                "SELECT tenant, sum(credits)::bigint, coalesce(sum(credits) FILTER (WHERE kind NOT IN ('reset', 'lease')), 0)::bigint FROM usage_events GROUP BY tenant"))
                .ToDictionary(r => r.Tenant, r => (r.Net, r.Billed));
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            ledgers = [];
        }

        var calls = vendor.Calls.Select(c => c.RequestMessage!.Path.Split('/')).ToList();
        return [.. Tenants.Select(t => (t, counters.GetValueOrDefault("t:" + t), ledgers.GetValueOrDefault(t).Net, ledgers.GetValueOrDefault(t).Billed, calls.Where(p => p[1] == t).Sum(p => Routes.Single(r => r.Route == p[2]).Cost)))];
    }

    private static async Task<(long Cost, string Tenant, HttpStatusCode Status)> SendAsync(ProxyInstance proxy, (string Route, long Cost) route, string tenant, int i)
    {
        using var message = new HttpRequestMessage(HttpMethod.Get, $"/{route.Route}/{tenant}/{route.Route}/r{i}");
        message.Headers.Add("X-Api-Key", tenant + "-key");
        using var response = await proxy.Client.SendAsync(message);
        return (route.Cost, tenant, response.StatusCode);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task ManyCallersOnTwoReplicas_NeverMoreThanThePool_TheReturnedCreditsAreSpentLater_AndEveryCallIsBilledOnce(int round)
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        var config = Config(vendor, prefix, ledger, limit: 3000, maxCredits: 40);
        var first = await ProxyInstance.StartAsync(config);
        var second = await ProxyInstance.StartAsync(config);
        var random = new Random(round);

        // 1,200 requests, 64 at a time, over both replicas: far more than the pool holds.
        var results = new List<(long Cost, string Tenant, HttpStatusCode Status)>();
        using var concurrency = new SemaphoreSlim(64);
        var sends = Enumerable.Range(0, 1200).Select(async i =>
        {
            await concurrency.WaitAsync();
            try
            {
                return await SendAsync(i % 2 == 0 ? first : second, Routes[random.Next(Routes.Length)], Tenants[random.Next(2)], i);
            }
            finally
            {
                concurrency.Release();
            }
        }).ToList();
        results.AddRange(await Task.WhenAll(sends).WaitAsync(TimeSpan.FromSeconds(60)));
        var burst = results.Where(r => r.Status == HttpStatusCode.OK).Sum(r => r.Cost);
        var metrics = (await first.MetricsAsync(), await second.MetricsAsync());
        var taken = metrics.Item1.Value("quota_proxy_leases_taken_total", ("pool", "shared")) + metrics.Item2.Value("quota_proxy_leases_taken_total", ("pool", "shared"));
        var debits = metrics.Item1.Value("quota_proxy_store_duration_seconds_count", ("operation", "debit")) + metrics.Item2.Value("quota_proxy_store_duration_seconds_count", ("operation", "debit"));
        output.WriteLine($"round {round}: burst admitted {burst} credits in {results.Count(r => r.Status == HttpStatusCode.OK)} requests; {taken} leases, {debits} store debits for {results.Count} requests; statuses {string.Join(", ", results.GroupBy(r => r.Status).Select(g => $"{(int)g.Key}: {g.Count()}"))}");

        // Then, once every lease has ended (TTL 1 s), the credits they did not spend are there again: one
        // request at a time takes the pool to exactly its limit, and not one credit further.
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        var held = (await first.MetricsAsync(), await second.MetricsAsync());
        foreach (var outcome in new[] { "granted", "spent", "returned", "forfeited" })
        {
            output.WriteLine($"{outcome}: {held.Item1.Value("quota_proxy_lease_credits_total", ("pool", "shared"), ("outcome", outcome))} + {held.Item2.Value("quota_proxy_lease_credits_total", ("pool", "shared"), ("outcome", outcome))}");
        }

        output.WriteLine($"counter after the wait: {(long?)await redis.Connection.GetDatabase().HashGetAsync(new RedisKeys(prefix).PoolUsage("shared"), "pool")}");
        for (var i = 0; results.Where(r => r.Status == HttpStatusCode.OK).Sum(r => r.Cost) < 3000 && i < 700; i++)
        {
            results.Add(await SendAsync(i % 2 == 0 ? first : second, Routes[0], Tenants[i % 2], 10_000 + i));
        }

        results.Add(await SendAsync(first, Routes[0], "prod", 20_000));
        results.Add(await SendAsync(second, Routes[0], "test", 20_001));
        await first.DisposeAsync();
        await second.DisposeAsync();

        var admitted = results.Where(r => r.Status == HttpStatusCode.OK).Sum(r => r.Cost);
        Assert.All(results, r => Assert.Contains(r.Status, new[] { HttpStatusCode.OK, HttpStatusCode.TooManyRequests, HttpStatusCode.ServiceUnavailable }));
        Assert.Equal(3000, admitted);
        Assert.Equal(HttpStatusCode.TooManyRequests, results[^1].Status);
        Assert.Equal(HttpStatusCode.TooManyRequests, results[^2].Status);
        // Leases did the work: far fewer store decisions than requests.
        Assert.InRange(taken, 1, 1200);
        Assert.True(debits < results.Count / 3.0, $"{debits} store debits for {results.Count} requests");

        // Both replicas stopped: their leases went back and their last spends are in Redis's stream, which any
        // replica's flusher takes to the ledger (here a fresh one, which holds no lease).
        await using var drainer = await ProxyInstance.StartAsync(config);
        var seen = await Poll.UntilAsync(
            "Redis counters, ledger net and billed credits and vendor calls × cost to agree per tenant",
            () => TalliesAsync(prefix, ledger, vendor),
            tallies => tallies.All(t => t.Redis == t.Ledger && t.Ledger == t.Billed && t.Billed == t.Vendor),
            TimeSpan.FromSeconds(30));
        Assert.Equal(3000, seen.Sum(t => t.Vendor));
        Assert.Equal(results.Count(r => r.Status == HttpStatusCode.OK), vendor.Calls.Count);
    }

    [Fact]
    public async Task AReplicaKilledWithItsLeases_LosesOnlyTheirUnspentCredits_CountedAsUsedNeverBilled_AndTheSweepReportsThem()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        var config = Config(vendor, prefix, ledger, limit: 10_000, maxCredits: 200, ttl: "00:00:02");
        await using var survivor = await ProxyInstance.StartAsync(config);
        using var doomed = await ProxyProcess.StartAsync(config);
        using var client = new HttpClient { BaseAddress = doomed.Address, Timeout = TimeSpan.FromSeconds(10) };
        var admitted = 0;
        for (var i = 0; i < 30; i++)
        {
            using var message = new HttpRequestMessage(HttpMethod.Get, $"/one/prod/one/k{i}");
            message.Headers.Add("X-Api-Key", "prod-key");
            using var response = await client.SendAsync(message);
            admitted += response.StatusCode == HttpStatusCode.OK ? 1 : 0;
        }

        Assert.Equal(30, admitted);
        // Its spends are recorded every 20 ms: wait until the ledger has them, then kill it holding its lease.
        await Poll.UntilAsync("the doomed replica's 30 spends in the ledger", () => TalliesAsync(prefix, ledger, vendor), t => t.Single(x => x.Tenant == "prod").Billed == 30, TimeSpan.FromSeconds(30));
        doomed.Kill();

        var tallies = await TalliesAsync(prefix, ledger, vendor);
        var prod = tallies.Single(t => t.Tenant == "prod");
        output.WriteLine($"after the kill: Redis {prod.Redis}, ledger {prod.Ledger}, vendor {prod.Vendor}");
        Assert.Equal(30, prod.Vendor);
        Assert.Equal(30, prod.Ledger);
        Assert.True(prod.Redis > prod.Ledger, "the dead replica's unspent block stays counted as used");
        Assert.True(prod.Redis - prod.Ledger < 200, "and it is less than one block");

        // The survivor's sweep finds the lease past its end (TTL 2 s) and its grace (10 s), and says what it held.
        var metrics = await Poll.UntilAsync(
            "the survivor's sweep to report the dead replica's lease",
            survivor.MetricsAsync,
            m => m.Value("quota_proxy_lease_credits_total", ("pool", "shared"), ("outcome", "lost")) > 0,
            TimeSpan.FromSeconds(40));
        Assert.Equal(prod.Redis - prod.Ledger, metrics.Value("quota_proxy_lease_credits_total", ("pool", "shared"), ("outcome", "lost")));

        // The sweep also told the ledger: its net equals the counter again, and billing still counts only the 30 calls.
        var settled = await Poll.UntilAsync(
            "the lost credits to reach the ledger as a lease event",
            () => TalliesAsync(prefix, ledger, vendor),
            t => t.Single(x => x.Tenant == "prod") is var p && p.Ledger == p.Redis,
            TimeSpan.FromSeconds(30));
        Assert.Equal((30L, 30L), (settled.Single(t => t.Tenant == "prod").Billed, settled.Single(t => t.Tenant == "prod").Vendor));
        Assert.Contains(survivor.Logs.Lines, line => line.Contains("credit lease(s) of a replica that stopped without returning them", StringComparison.Ordinal));

        // The survivor admits from what is left; it never gets the dead block back.
        var after = await survivor.SendAsync("prod-key", 5, "/one/prod/one/survivor");
        Assert.Equal(5, after.Admitted);
    }

    [Fact]
    public async Task AnOverrideOrAResetOnAnotherReplica_VoidsThisReplicasLease_SoItAdmitsNothingPastTheNewLimit()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        var adminPort = LoopbackPorts.Free();
        var config = Config(vendor, prefix, ledger, limit: 10_000, maxCredits: 100, ttl: "00:01:00");
        await using var holder = await ProxyInstance.StartAsync(config);
        await using var admin = await ProxyInstance.StartAsync(Config(vendor, prefix, ledger, limit: 10_000, maxCredits: 100, ttl: "00:01:00").Admin(adminPort, "admin-key"));

        // The holder takes a block of 100 (a long TTL: only the invalidation can end it early) and spends 10.
        var first = await holder.SendAsync("prod-key", 10, "/one/prod/one/a");
        Assert.Equal(10, first.Admitted);
        Assert.True((long?)await redis.Connection.GetDatabase().HashGetAsync(new RedisKeys(prefix).PoolUsage("shared"), "t:prod") > 10, "the holder took a block");

        // Another replica lowers prod's limit to 20: the holder's block ends (returned), and it admits 10 more, not 90.
        using (var lower = await AdminAsync(admin, HttpMethod.Put, "/admin/v1/pools/shared/overrides/prod", new { limit = 20 }))
        {
            Assert.Equal(HttpStatusCode.OK, lower.StatusCode);
        }

        await Poll.UntilAsync(
            "the holder's block to be returned",
            async () => (long?)await redis.Connection.GetDatabase().HashGetAsync(new RedisKeys(prefix).PoolUsage("shared"), "t:prod"),
            used => used == 10,
            TimeSpan.FromSeconds(10));
        var second = await holder.SendAsync("prod-key", 30, "/one/prod/one/b");
        Assert.Equal(10, second.Admitted);

        // The limit back up, the holder takes a new block; then a reset on the other replica voids it:
        // nothing of it is spent or returned after the reset (its credits stay counted as a lease event).
        using (var restore = await AdminAsync(admin, HttpMethod.Delete, "/admin/v1/pools/shared/overrides/prod"))
        {
            Assert.Equal(HttpStatusCode.OK, restore.StatusCode);
        }

        await Poll.UntilAsync("the holder to follow the restored limit", () => holder.StatusAsync("prod-key", "/one/prod/one/c"), status => status == HttpStatusCode.OK, TimeSpan.FromSeconds(10));
        Assert.Equal(5, (await holder.SendAsync("prod-key", 5, "/one/prod/one/d")).Admitted);
        using (var reset = await AdminAsync(admin, HttpMethod.Post, "/admin/v1/pools/shared/reset", new { tenant = "prod" }))
        {
            Assert.Equal(HttpStatusCode.OK, reset.StatusCode);
        }

        var metrics = await holder.MetricsWhenAsync(m => m.Value("quota_proxy_lease_credits_total", ("pool", "shared"), ("outcome", "forfeited")) > 0);
        var forfeited = metrics.Value("quota_proxy_lease_credits_total", ("pool", "shared"), ("outcome", "forfeited"));
        Assert.Equal(0, (long?)await redis.Connection.GetDatabase().HashGetAsync(new RedisKeys(prefix).PoolUsage("shared"), "t:prod") ?? 0);
        Assert.Equal(3, (await holder.SendAsync("prod-key", 3, "/one/prod/one/e")).Admitted);
        await holder.DisposeAsync();
        await admin.DisposeAsync();
        await using var drainer = await ProxyInstance.StartAsync(config);

        // The counter holds what was admitted since the reset; the ledger's net agrees (the reset and the
        // voided block are events of their own), and billing counts every vendor call once.
        var seen = await Poll.UntilAsync(
            "Redis, the ledger and the vendor to agree after the reset",
            () => TalliesAsync(prefix, ledger, vendor),
            t => t.Single(x => x.Tenant == "prod") is var p && p.Redis == 3 && p.Ledger == 3 && p.Billed == p.Vendor,
            TimeSpan.FromSeconds(30));
        output.WriteLine($"forfeited {forfeited}; prod after all: {seen.Single(t => t.Tenant == "prod")}");
        Assert.Equal(10 + 10 + 1 + 5 + 3, seen.Single(t => t.Tenant == "prod").Vendor);
    }

    [Fact]
    public async Task RefundsAndSettlementsOfRequestsSpentFromABlock_GoBackIntoIt_AndTheLedgerBillsWhatTheVendorDid()
    {
        using var vendor = new VendorServer();
        vendor.Server.Reset();
        vendor.Server.Given(WireMock.RequestBuilders.Request.Create().WithPath(new WireMock.Matchers.WildcardMatcher("/*/one/fail*")).UsingGet())
            .RespondWith(WireMock.ResponseBuilders.Response.Create().WithStatusCode(500).WithBody("vendor broke"));
        vendor.Server.Given(WireMock.RequestBuilders.Request.Create().WithPath(new WireMock.Matchers.WildcardMatcher("/*/one/ok*")).UsingGet())
            .RespondWith(WireMock.ResponseBuilders.Response.Create().WithStatusCode(200).WithBody("{}"));
        vendor.Server.Given(WireMock.RequestBuilders.Request.Create().WithPath(new WireMock.Matchers.WildcardMatcher("/*/five/*")).UsingGet())
            .RespondWith(WireMock.ResponseBuilders.Response.Create().WithStatusCode(200).WithHeader("X-Credits-Used", "2").WithBody("{}"));
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        TestProxyConfig Configured() => Config(vendor, prefix, ledger, limit: 1000, maxCredits: 50, ttl: "00:00:30")
            .Set("ReverseProxy:Routes:one:Metadata:Quota.RefundOn", "5xx")
            .Set("ReverseProxy:Routes:five:Metadata:Quota.Cost", null)
            .Set("ReverseProxy:Routes:five:Metadata:Quota.MaxCost", "5")
            .Set("ReverseProxy:Routes:five:Metadata:Quota.CostFromResponseHeader", "X-Credits-Used");
        var first = await ProxyInstance.StartAsync(Configured());
        var second = await ProxyInstance.StartAsync(Configured());

        var statuses = new List<(string Path, HttpStatusCode Status)>();
        for (var i = 0; i < 90; i++)
        {
            var tenant = Tenants[i % 2];
            var path = (i % 3) switch { 0 => $"/one/{tenant}/one/ok{i}", 1 => $"/one/{tenant}/one/fail{i}", _ => $"/five/{tenant}/five/r{i}" };
            statuses.Add((path, await (i % 4 < 2 ? first : second).StatusAsync(tenant + "-key", path)));
        }

        // Blocks were taken and spent from; none has ended yet (TTL 30 s): the refunds and settlements went into them.
        var metrics = await first.MetricsAsync();
        Assert.True(metrics.Value("quota_proxy_leases_taken_total", ("pool", "shared")) >= 1);
        Assert.Equal(0, metrics.Value("quota_proxy_lease_credits_total", ("pool", "shared"), ("outcome", "returned")));
        await first.DisposeAsync();
        await second.DisposeAsync();
        await using var drainer = await ProxyInstance.StartAsync(Configured());

        Assert.All(statuses, s => Assert.Equal(s.Path.Contains("/fail", StringComparison.Ordinal) ? HttpStatusCode.InternalServerError : HttpStatusCode.OK, s.Status));
        // What the vendor did: an 'ok' call costs 1, a failed one nothing (refunded), a 'five' call what its header says (2).
        var expected = Tenants.ToDictionary(t => t, t => statuses.Where(s => s.Path.Split('/')[2] == t).Sum(s => s.Path.Contains("/ok", StringComparison.Ordinal) ? 1L : s.Path.StartsWith("/five/", StringComparison.Ordinal) ? 2L : 0L));
        var seen = await Poll.UntilAsync(
            "Redis, the ledger's net and billed credits to equal what the vendor did, per tenant",
            () => TalliesAsync(prefix, ledger, vendor),
            t => t.All(x => x.Redis == expected[x.Tenant] && x.Ledger == expected[x.Tenant] && x.Billed == expected[x.Tenant]),
            TimeSpan.FromSeconds(30));
        output.WriteLine(string.Join("; ", seen));
        Assert.Equal(90, vendor.Calls.Count);
    }

    [Fact]
    public async Task RedisPausedWhileReplicasHoldBlocks_TheyAdmitOnlyWhatTheirBlocksHold_TheRest503Fast_AndAfterTheThawEveryCallIsBilledOnce()
    {
        using var vendor = new VendorServer();
        await using var server = await LocalRedisServer.StartAsync();
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        var config = Config(vendor, prefix, ledger, limit: 100_000, maxCredits: 40, redisConnection: server.ConnectionString);
        var first = await ProxyInstance.StartAsync(config);
        var second = await ProxyInstance.StartAsync(config);

        var results = new System.Collections.Concurrent.ConcurrentQueue<(HttpStatusCode Status, TimeSpan Elapsed, bool Paused)>();
        var paused = 0;
        using var stop = new CancellationTokenSource();
        var load = Enumerable.Range(0, 8).Select(worker => Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var wasPaused = Volatile.Read(ref paused) == 1;
                var watch = System.Diagnostics.Stopwatch.StartNew();
                var (_, _, status) = await SendAsync(worker % 2 == 0 ? first : second, Routes[0], Tenants[worker % 2], (worker * 1_000_000) + i);
                results.Enqueue((status, watch.Elapsed, wasPaused && Volatile.Read(ref paused) == 1));
                await Task.Delay(2);
            }
        })).ToList();

        await Task.Delay(1500);
        server.Pause();
        Volatile.Write(ref paused, 1);
        await Task.Delay(3000);
        Volatile.Write(ref paused, 0);
        server.Resume();
        await Task.Delay(2000);
        await stop.CancelAsync();
        await Task.WhenAll(load).WaitAsync(TimeSpan.FromSeconds(60));
        var metrics = (await first.MetricsAsync(), await second.MetricsAsync());
        await first.DisposeAsync();
        await second.DisposeAsync();

        var all = results.ToList();
        var duringPause = all.Where(r => r.Paused).ToList();
        output.WriteLine($"{all.Count} requests: " + string.Join(", ", all.GroupBy(r => r.Status).Select(g => $"{(int)g.Key} x {g.Count()}")));
        output.WriteLine($"during the pause: {string.Join(", ", duringPause.GroupBy(r => r.Status).Select(g => $"{(int)g.Key} x {g.Count()}"))}, slowest {duringPause.Select(r => r.Elapsed.TotalMilliseconds).DefaultIfEmpty().Max():F0} ms");
        double Lease(string outcome) => metrics.Item1.Value("quota_proxy_lease_credits_total", ("pool", "shared"), ("outcome", outcome)) + metrics.Item2.Value("quota_proxy_lease_credits_total", ("pool", "shared"), ("outcome", outcome));
        output.WriteLine(string.Join(", ", new[] { "granted", "spent", "returned", "forfeited" }.Select(o => $"{o} {Lease(o)}")));

        // Admitted, or a fast 503: during the pause only what the blocks already held can be admitted.
        Assert.All(all, r => Assert.Contains(r.Status, new[] { HttpStatusCode.OK, HttpStatusCode.ServiceUnavailable }));
        Assert.Contains(duringPause, r => r.Status == HttpStatusCode.ServiceUnavailable);
        Assert.All(duringPause.Where(r => r.Status == HttpStatusCode.ServiceUnavailable), r => Assert.InRange(r.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(1)));
        Assert.True(duringPause.Count(r => r.Status == HttpStatusCode.OK) <= 2 * 2 * 40, "no more admitted during the pause than two replicas' blocks of two tenants hold");

        // After the thaw every return and record went through: Redis, the ledger and the vendor agree.
        await using var connection = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(server.ConnectionString);
        await using var drainer = await ProxyInstance.StartAsync(config);
        var seen = await Poll.UntilAsync(
            "Redis counters, ledger net and billed credits and vendor calls to agree per tenant",
            () => TalliesAsync(prefix, ledger, vendor, connection),
            tallies => tallies.All(t => t.Redis == t.Ledger && t.Billed == t.Vendor),
            TimeSpan.FromSeconds(30));
        output.WriteLine(string.Join("; ", seen));
        Assert.Equal(all.Count(r => r.Status == HttpStatusCode.OK), seen.Sum(t => t.Vendor));
        Assert.All(seen, t => Assert.Equal(t.Vendor, t.Redis));
    }

    private static async Task<HttpResponseMessage> AdminAsync(ProxyInstance proxy, HttpMethod method, string path, object? body = null)
    {
        using var message = new HttpRequestMessage(method, path);
        message.Headers.Add("X-Admin-Key", "admin-key");
        if (body is not null)
        {
            message.Content = System.Net.Http.Json.JsonContent.Create(body);
        }

        return await proxy.Admin!.SendAsync(message);
    }
}
