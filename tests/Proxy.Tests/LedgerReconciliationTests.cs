using System.Net;
using Dapper;
using Npgsql;
using Microsoft.Extensions.DependencyInjection;
using QuotaProxy.Enforcement.Ledger;
using QuotaProxy.Enforcement.Redis;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>
/// The ledger end to end: two proxy replicas on one Redis and one PostgreSQL, WireMock as the vendor.
/// After the flushers drain, the ledger, the store's counters and the vendor's calls agree exactly.
/// </summary>
[Collection(LedgerCollection.Name)]
public sealed class LedgerReconciliationTests(RedisFixture redis, PostgresFixture postgres)
{
    private static TestProxyConfig Config(VendorServer vendor, string redisConnection, string prefix, string ledger) => new TestProxyConfig(vendor.Url)
        .Pool("daily", 100, "1d", "UTC", ("prod", null), ("test", null))
        .Route("quotes", pool: "daily", cost: 1)
        .Route("reports", pool: "daily", cost: 3)
        .ApiKey("prod-key", "prod")
        .ApiKey("test-key", "test")
        .Redis(redisConnection, prefix, timeout: TimeSpan.FromSeconds(2))
        .Set("Quota:Ledger:ConnectionString", ledger)
        .Set("Quota:Ledger:PollInterval", "00:00:00.050")
        .Set("Quota:Ledger:RetryDelay", "00:00:00.100");

    [Fact]
    public async Task FlusherCrashingBetweenCommitAndAcknowledge_RedeliversTheBatch_AndTheLedgerHoldsEachEventOnce()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, redis.ConnectionString, prefix, ledger));
        var flusher = proxy.Services.GetRequiredService<LedgerFlusher>();
        var crashes = 0;
        flusher.AfterCommit = _ =>
        {
            if (Interlocked.Increment(ref crashes) <= 2)
            {
                throw new InvalidOperationException("fault hook: crash after commit, before acknowledge");
            }
        };

        for (var i = 0; i < 10; i++)
        {
            using var response = await proxy.GetAsync("prod-key", "/quotes/AAPL");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var drained = await DrainAsync(redis, prefix, ledger, expectedCredits: 10);

        Assert.True(crashes >= 3, $"the hook ran {crashes} times");
        Assert.Equal(10, drained.Credits);
        Assert.Equal(10, drained.Events);
    }

    [Fact]
    public async Task PostgresDownUnderLoad_TheProxyKeepsServing_AndOnRecoveryEveryEventArrivesOnce()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        // A server of this test's own, so it can be stopped whatever the fixture's PostgreSQL is.
        await using var server = await LocalPostgresServer.StartAsync();
        var ledger = server.ConnectionString;
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, redis.ConnectionString, prefix, ledger));

        await SendManyAsync(proxy, 10);
        await DrainAsync(redis, prefix, ledger, expectedCredits: 10);
        await server.StopAsync();
        NpgsqlConnection.ClearAllPools();
        var duringOutage = await SendManyAsync(proxy, 20);
        await Task.Delay(300);
        var waiting = await redis.Connection.GetDatabase().StreamLengthAsync(new RedisKeys(prefix).EventStream("daily"));
        await server.StartAgainAsync();
        var drained = await DrainAsync(redis, prefix, ledger, expectedCredits: 30);

        Assert.All(duringOutage, status => Assert.Equal(HttpStatusCode.OK, status));
        Assert.Equal(20, waiting);
        Assert.Equal(30, drained.Credits);
        Assert.Equal(30, drained.Events);
    }

    [Fact]
    public async Task RefundOn5xxAndTransport_GivesTheCreditsBack_AndTheLedgerNetsToZeroForThoseRequests()
    {
        using var vendor = new VendorServer();
        vendor.Server.Reset();
        vendor.Server.Given(WireMock.RequestBuilders.Request.Create().WithPath("/AAPL").UsingAnyMethod())
            .RespondWith(WireMock.ResponseBuilders.Response.Create().WithStatusCode(500).WithBody("vendor broke"));
        vendor.Server.Given(WireMock.RequestBuilders.Request.Create().WithPath("/ok").UsingAnyMethod())
            .RespondWith(WireMock.ResponseBuilders.Response.Create().WithStatusCode(200).WithBody("{}"));
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        var config = Config(vendor, redis.ConnectionString, prefix, ledger)
            .Set("ReverseProxy:Routes:quotes:Metadata:Quota.RefundOn", "5xx")
            .Set("ReverseProxy:Clusters:dead:Destinations:d1:Address", $"http://127.0.0.1:{LoopbackPorts.Free()}/")
            .Set("ReverseProxy:Routes:broken:ClusterId", "dead")
            .Set("ReverseProxy:Routes:broken:Match:Path", "/broken/{**rest}")
            .Set("ReverseProxy:Routes:broken:Metadata:Quota.Pool", "daily")
            .Set("ReverseProxy:Routes:broken:Metadata:Quota.Cost", "2")
            .Set("ReverseProxy:Routes:broken:Metadata:Quota.RefundOn", "transport");
        await using var proxy = await ProxyInstance.StartAsync(config);

        using var vendorError = await proxy.GetAsync("prod-key", "/quotes/AAPL");
        using var transportError = await proxy.GetAsync("prod-key", "/broken/x");
        using var charged = await proxy.GetAsync("prod-key", "/quotes/ok");
        var drained = await DrainAsync(redis, prefix, ledger, expectedCredits: 1);

        Assert.Equal(HttpStatusCode.InternalServerError, vendorError.StatusCode);
        Assert.Equal(HttpStatusCode.BadGateway, transportError.StatusCode);
        Assert.Equal(HttpStatusCode.OK, charged.StatusCode);
        var usage = (await redis.Connection.GetDatabase().HashGetAllAsync(new RedisKeys(prefix).PoolUsage("daily"))).ToDictionary(e => e.Name.ToString(), e => (long)e.Value);
        Assert.Equal((1, 1), (usage["pool"], usage["t:prod"]));
        Assert.Equal((1, 5), drained);
        await using var connection = new NpgsqlConnection(ledger);
        var kinds = (await connection.QueryAsync<(string Route, string Kind, long Credits)>("SELECT route, kind, credits FROM usage_events ORDER BY route, kind")).ToList();
        Assert.Equal([("broken", "debit", 2L), ("broken", "refund", -2L), ("quotes", "debit", 1L), ("quotes", "debit", 1L), ("quotes", "refund", -1L)], kinds);
    }

    [Fact]
    public async Task CostFromResponseHeader_ReservesMaxCost_SettlesDown_AndCapsAHeaderAboveIt_AsAdjustmentEvents()
    {
        using var vendor = new VendorServer();
        vendor.Server.Reset();
        foreach (var (path, credits) in new[] { ("/down", "1"), ("/exact", "5"), ("/huge", "5000") })
        {
            vendor.Server.Given(WireMock.RequestBuilders.Request.Create().WithPath(path).UsingAnyMethod())
                .RespondWith(WireMock.ResponseBuilders.Response.Create().WithStatusCode(200).WithHeader("X-Credits-Used", credits).WithBody("{}"));
        }

        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        var config = Config(vendor, redis.ConnectionString, prefix, ledger)
            .Set("Quota:Pools:daily:Limit", "15")
            .Set("ReverseProxy:Routes:reports:Metadata:Quota.Cost", null)
            .Set("ReverseProxy:Routes:reports:Metadata:Quota.MaxCost", "5")
            .Set("ReverseProxy:Routes:reports:Metadata:Quota.CostFromResponseHeader", "X-Credits-Used");
        await using var proxy = await ProxyInstance.StartAsync(config);

        // Reserve 5 each time: settled to 1 (4 back), then 5 (nothing to settle), then a header of 5,000 is
        // capped at the 5 reserved: the pool ends at 11 of 15, never past what was reserved.
        HttpStatusCode[] statuses = [
            (await proxy.GetAsync("prod-key", "/reports/down")).StatusCode,
            (await proxy.GetAsync("prod-key", "/reports/exact")).StatusCode,
            (await proxy.GetAsync("prod-key", "/reports/huge")).StatusCode,
        ];
        var drained = await DrainAsync(redis, prefix, ledger, expectedCredits: 11);

        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        var usage = (await redis.Connection.GetDatabase().HashGetAllAsync(new RedisKeys(prefix).PoolUsage("daily"))).ToDictionary(e => e.Name.ToString(), e => (long)e.Value);
        Assert.Equal((11, 11), (usage["pool"], usage["t:prod"]));
        Assert.Equal((11, 4), drained);
        await using var connection = new NpgsqlConnection(ledger);
        var adjustments = (await connection.QueryAsync<long>("SELECT credits FROM usage_events WHERE kind = 'adjustment' ORDER BY credits")).ToList();
        Assert.Equal([-4L], adjustments);
        var day = Assert.Single(await connection.QueryAsync<(long Debited, long Adjusted, long Net)>("SELECT debited, adjusted, net FROM usage_daily"));
        Assert.Equal((15, -4, 11), day);
        Assert.Contains(proxy.Logs.Lines, line => line.Contains("[1012]", StringComparison.Ordinal) && line.Contains("5000", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RetryWithTheSameIdempotencyKey_OnARouteTheVendorDoesNotDeclareIdempotent_IsChargedAndBilledLikeAnyRequest()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, redis.ConnectionString, prefix, ledger));

        async Task<HttpResponseMessage> Send(string? key)
        {
            using var message = new HttpRequestMessage(HttpMethod.Get, "/reports/daily");
            message.Headers.Add("X-Api-Key", "prod-key");
            if (key is not null)
            {
                message.Headers.Add("Idempotency-Key", key);
            }

            return await proxy.Client.SendAsync(message);
        }

        using var first = await Send("order-42");
        using var retry = await Send("order-42");
        using var other = await Send("order-43");
        using var malformed = await Send(new string('k', 201));
        var drained = await DrainAsync(redis, prefix, ledger, expectedCredits: 9);

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK), (first.StatusCode, retry.StatusCode, other.StatusCode));
        // The vendor would do (and bill) the work again: a reused key is no reason to let it through for free.
        Assert.Equal("6", retry.Header("X-RateLimit-Used"));
        Assert.Equal(3, vendor.CallsTo("/daily"));
        Assert.Equal((9, 3), drained);
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        Assert.Equal("application/problem+json", malformed.Content.Headers.ContentType!.MediaType);
    }

    [Fact]
    public async Task LedgerBacklogFull_MeteredRequestsGet503AndTheVendorIsNotCalled_TheBacklogIsInTheMetrics_AndReadyzNamesTheLedger()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        // PostgreSQL never answers here: events can only pile up.
        var unreachable = $"Host=127.0.0.1;Port={LoopbackPorts.Free()};Username=postgres;Database=postgres;Timeout=1";
        var config = Config(vendor, redis.ConnectionString, prefix, unreachable).Set("Quota:Ledger:MaxBacklog", "3");
        // Redis already holds this deployment's counters (their baseline), as after any start with the ledger
        // there: with none, the proxy would admit nothing until the ledger said what the window had used.
        await redis.Connection.GetDatabase().StringSetAsync(new RedisKeys(prefix).Baseline("daily"), 0);
        await using var proxy = await ProxyInstance.StartAsync(config);

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 5; i++)
        {
            using var response = await proxy.GetAsync("prod-key", "/quotes/AAPL");
            statuses.Add(response.StatusCode);
        }

        // The flusher fails against the unreachable PostgreSQL and publishes the backlog on each retry.
        var metrics = await proxy.MetricsWhenAsync(m => m.Value("quota_proxy_ledger_backlog_events", ("pool", "daily")) == 3);

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.ServiceUnavailable, HttpStatusCode.ServiceUnavailable], statuses);
        Assert.Equal(3, vendor.CallsTo("/AAPL"));
        Assert.Equal(3, await redis.Connection.GetDatabase().StreamLengthAsync(new RedisKeys(prefix).EventStream("daily")));
        Assert.Equal(3, metrics.Value("quota_proxy_ledger_backlog_events", ("pool", "daily")));
        Assert.True(metrics.Value("quota_proxy_ledger_flush_errors_total") >= 1);
        Assert.Equal(2, metrics.Value("quota_proxy_requests_total", ("route", "quotes"), ("outcome", "ledger_backlog_full")));
        using var readyz = await proxy.Client.GetAsync("/readyz");
        // Degraded, still ready: the replica serves what it can bill, and says the ledger is away.
        Assert.Equal(HttpStatusCode.OK, readyz.StatusCode);
        var checks = System.Text.Json.JsonDocument.Parse(await readyz.Content.ReadAsStringAsync()).RootElement.GetProperty("checks");
        Assert.Equal(("Healthy", "Degraded"), (checks.GetProperty("store").GetProperty("status").GetString(), checks.GetProperty("ledger").GetProperty("status").GetString()));
    }

    [Fact]
    public async Task ReplicaKilledWithSigkillMidLoad_TheOtherReplicaTakesOverItsEvents_AndEveryDebitIsBilledOnce()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        var config = Config(vendor, redis.ConnectionString, prefix, ledger)
            .Set("Quota:Pools:daily:Limit", "100000")
            .Set("Quota:Ledger:ClaimIdle", "00:00:01")
            .Set("Quota:Ledger:BatchSize", "5");
        await using var survivor = await ProxyInstance.StartAsync(config);
        using var doomed = await ProxyProcess.StartAsync(config);

        using var client = new HttpClient { BaseAddress = doomed.Address, Timeout = TimeSpan.FromSeconds(10) };
        using (var warmUp = new HttpRequestMessage(HttpMethod.Get, "/quotes/AAPL"))
        {
            warmUp.Headers.Add("X-Api-Key", "prod-key");
            using var response = await client.SendAsync(warmUp);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var completed = 0;
        var load = Enumerable.Range(0, 2000).Select(async i =>
        {
            try
            {
                using var message = new HttpRequestMessage(HttpMethod.Get, i % 3 == 0 ? "/reports/daily" : "/quotes/AAPL");
                message.Headers.Add("X-Api-Key", i % 2 == 0 ? "prod-key" : "test-key");
                using var response = await client.SendAsync(message);
                Interlocked.Increment(ref completed);
                return response.StatusCode;
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or System.Net.Sockets.SocketException or TaskCanceledException)
            {
                return (HttpStatusCode)0; // in flight when the replica died: the connection fails however it fails
            }
        }).ToList();
        await Poll.UntilAsync("100 of the requests to complete", () => Task.FromResult(Volatile.Read(ref completed)), done => done >= 100, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(5));

        doomed.Kill();
        var statuses = await Task.WhenAll(load);
        var survivorStatuses = await SendManyAsync(survivor, 20);

        var usage = (await redis.Connection.GetDatabase().HashGetAllAsync(new RedisKeys(prefix).PoolUsage("daily"))).ToDictionary(e => e.Name.ToString(), e => (long)e.Value);
        var drained = await DrainAsync(redis, prefix, ledger, expectedCredits: usage["pool"]);

        var seen = string.Join(", ", statuses.GroupBy(s => (int)s).Select(g => $"{g.Key}: {g.Count()}"));
        Assert.True(statuses.Any(s => s == HttpStatusCode.OK) && statuses.Any(s => s == 0), $"the load should be cut off mid-way: {seen}");
        Assert.All(survivorStatuses, s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.Equal(usage["pool"], drained.Credits);
        await using var connection = new NpgsqlConnection(ledger);
        var byTenant = (await connection.QueryAsync<(string Tenant, long Credits)>("SELECT tenant, sum(credits)::bigint FROM usage_events GROUP BY tenant")).ToDictionary(r => r.Tenant, r => r.Credits);
        Assert.Equal(usage["t:prod"], byTenant["prod"]);
        Assert.Equal(usage["t:test"], byTenant["test"]);
        Assert.Equal(0, (await redis.Connection.GetDatabase().StreamPendingAsync(new RedisKeys(prefix).EventStream("daily"), "ledger")).PendingMessageCount);
        Assert.Equal(0, await redis.Connection.GetDatabase().StreamLengthAsync(new RedisKeys(prefix).EventStream("daily")));
    }

    private static async Task<HttpStatusCode[]> SendManyAsync(ProxyInstance proxy, int count) =>
        await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            using var response = await proxy.GetAsync("test-key", "/quotes/AAPL");
            return response.StatusCode;
        }));

    [Fact]
    public async Task HotReloadAddingAPoolAndARouteThatLinksTwoPools_EveryEventOfEveryStreamReachesTheLedger()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        var directory = Directory.CreateTempSubdirectory("quotaproxy-ledger-reload-").FullName;
        var file = Path.Combine(directory, "appsettings.json");
        TestProxyConfig Before() => new TestProxyConfig(vendor.Url)
            .Pool("daily", 1000, "1d", "UTC", ("prod", null))
            .Pool("hourly", 1000, "1h", "UTC", ("prod", null))
            .Route("quotes", pool: "daily", cost: 1)
            .Route("minutes", pool: "hourly", cost: 2)
            .ApiKey("prod-key", "prod")
            .Redis(redis.ConnectionString, prefix, timeout: TimeSpan.FromSeconds(2))
            .Set("Quota:Ledger:ConnectionString", ledger)
            .Set("Quota:Ledger:PollInterval", "00:00:00.050");
        try
        {
            await using var proxy = await ProxyInstance.StartFromFileAsync(Before(), file);
            var hourlyBefore = await proxy.SendAsync("prod-key", 4, "/minutes/m");

            // A new pool with its route, and a route that links daily and hourly: hourly's keys move under
            // daily's hash tag, so its events from now on go to another stream than those sent before.
            Before()
                .Pool("extra", 1000, "1d", "UTC", ("prod", null))
                .Route("extras", pool: "extra", cost: 3)
                .Route("both", pool: "daily,hourly", cost: 1)
                .WriteJson(file);
            await proxy.MetricsWhenAsync(m => m.Value("quota_proxy_config_reloads_total", ("result", "applied")) >= 1);
            var extras = await proxy.SendAsync("prod-key", 5, "/extras/e");
            var both = await proxy.SendAsync("prod-key", 6, "/both/b");
            var quotes = await proxy.SendAsync("prod-key", 7, "/quotes/q");
            var hourlyAfter = await proxy.SendAsync("prod-key", 8, "/minutes/m");

            var keys = new RedisKeys(prefix);
            var drained = await LedgerDrain.UntilAsync(
                redis.Connection.GetDatabase(),
                ledger,
                expectedCredits: (2 * 4) + (3 * 5) + (2 * 6) + 7 + (2 * 8),
                [keys.EventStream("daily"), keys.EventStream("hourly"), keys.EventStream("hourly", hashTag: "daily"), keys.EventStream("extra")]);
            await using var connection = new NpgsqlConnection(ledger);
            var byPool = (await connection.QueryAsync<(string Pool, long Credits)>("SELECT pool, sum(credits)::bigint FROM usage_events GROUP BY pool"))
                .ToDictionary(row => row.Pool, row => row.Credits);

            Assert.All(new[] { hourlyBefore, extras, both, quotes, hourlyAfter }, sent => Assert.All(sent.Statuses, status => Assert.Equal(HttpStatusCode.OK, status)));
            // Per pool: the ledger's credits are the vendor's calls times each route's cost.
            Assert.Equal((5, 6, 7, 4 + 8), (vendor.CallsTo("/e"), vendor.CallsTo("/b"), vendor.CallsTo("/q"), vendor.CallsTo("/m")));
            Assert.Equal(vendor.CallsTo("/e") * 3, byPool["extra"]);
            Assert.Equal(vendor.CallsTo("/b") + vendor.CallsTo("/q"), byPool["daily"]);
            Assert.Equal((vendor.CallsTo("/m") * 2) + vendor.CallsTo("/b"), byPool["hourly"]);
            Assert.Equal(drained.Credits, byPool.Values.Sum());
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task OnePoolsStreamFailing_TheOtherPoolsEventsStillReachTheLedger()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        // What a Redis Cluster shard that is down does to its pools' streams, short of a cluster: the "broken"
        // pool's stream key holds a string, so every read of it fails.
        var keys = new RedisKeys(prefix);
        await redis.Connection.GetDatabase().StringSetAsync(keys.EventStream("broken"), "not a stream");
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, redis.ConnectionString, prefix, ledger)
            .Pool("broken", 100, "1d", "UTC", ("prod", null)));

        var sent = await proxy.SendAsync("prod-key", 5, "/quotes/AAPL");
        var drained = await DrainAsync(redis, prefix, ledger, expectedCredits: 5);
        var metrics = await proxy.MetricsWhenAsync(m => m.Value("quota_proxy_ledger_flush_errors_total") >= 2);

        Assert.Equal(5, sent.Admitted);
        Assert.Equal((5, 5), drained);
        Assert.True(metrics.Value("quota_proxy_ledger_flush_errors_total") >= 2, "the broken stream was retried and failed again");
        Assert.Contains(proxy.Logs.Lines, line => line.Contains("[1103]", StringComparison.Ordinal) && line.Contains("pool broken", StringComparison.Ordinal));
        Assert.DoesNotContain(proxy.Logs.Lines, line => line.Contains("[1103]", StringComparison.Ordinal) && line.Contains("pool daily", StringComparison.Ordinal));
    }

    private static Task<(long Credits, long Events)> DrainAsync(RedisFixture redis, string prefix, string ledger, long expectedCredits) =>
        LedgerDrain.UntilAsync(redis.Connection.GetDatabase(), ledger, expectedCredits, [new RedisKeys(prefix).EventStream("daily")]);

    [Fact]
    public async Task ConcurrentLoadThroughTwoReplicas_LedgerEqualsStoreCountersEqualsVendorCallsTimesCost()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        TestProxyConfig Config() => new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("prod", null), ("test", null))
            .Route("quotes", pool: "daily", cost: 1)
            .Route("reports", pool: "daily", cost: 3)
            .ApiKey("prod-key", "prod")
            .ApiKey("test-key", "test")
            .Redis(redis.ConnectionString, prefix, timeout: TimeSpan.FromSeconds(2))
            .Set("Quota:Ledger:ConnectionString", ledger)
            .Set("Quota:Ledger:PollInterval", "00:00:00.050");
        await using var first = await ProxyInstance.StartAsync(Config());
        await using var second = await ProxyInstance.StartAsync(Config());

        var random = new Random(5);
        var requests = Enumerable.Range(0, 120).Select(i =>
        {
            var proxy = i % 2 == 0 ? first : second;
            var key = random.Next(2) == 0 ? "prod-key" : "test-key";
            var path = random.Next(3) == 0 ? "/reports/daily" : "/quotes/AAPL";
            return Send(proxy, key, path);
        }).ToList();
        var results = await Task.WhenAll(requests);

        var database = redis.Connection.GetDatabase();
        await using var dataSource = NpgsqlDataSource.Create(ledger);
        await using var connection = await dataSource.OpenConnectionAsync();
        var admittedCredits = results.Where(r => r.Status == HttpStatusCode.OK).Sum(r => r.Cost);
        var (ledgerCredits, _) = await DrainAsync(redis, prefix, ledger, admittedCredits);

        var usage = (await database.HashGetAllAsync(new RedisKeys(prefix).PoolUsage("daily"))).ToDictionary(e => e.Name.ToString(), e => (long)e.Value);
        var byTenant = (await connection.QueryAsync<(string Tenant, long Credits)>("SELECT tenant, sum(credits)::bigint FROM usage_events GROUP BY tenant"))
            .ToDictionary(r => r.Tenant, r => r.Credits);
        var vendorCredits = vendor.CallsTo("/daily") * 3 + vendor.CallsTo("/AAPL");

        Assert.InRange(admittedCredits, 90, 100);
        Assert.Contains(results, r => r.Status == HttpStatusCode.TooManyRequests);
        Assert.Equal(admittedCredits, ledgerCredits);
        Assert.Equal(usage["pool"], ledgerCredits);
        Assert.Equal(usage["t:prod"], byTenant.GetValueOrDefault("prod"));
        Assert.Equal(usage["t:test"], byTenant.GetValueOrDefault("test"));
        Assert.Equal(admittedCredits, vendorCredits);
        Assert.Equal(results.Count(r => r.Status == HttpStatusCode.OK), await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM usage_events"));
        Assert.Equal(ledgerCredits, await connection.ExecuteScalarAsync<long>("SELECT sum(net)::bigint FROM usage_daily"));
    }

    private static async Task<(HttpStatusCode Status, long Cost)> Send(ProxyInstance proxy, string key, string path)
    {
        using var response = await proxy.GetAsync(key, path);
        return (response.StatusCode, path.StartsWith("/reports", StringComparison.Ordinal) ? 3 : 1);
    }

}
