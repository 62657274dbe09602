using System.Net;
using System.Text;
using Dapper;
using Npgsql;
using QuotaProxy.Enforcement.Redis;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>
/// Idempotency keys through the real proxy on Redis and PostgreSQL, as a caller holding one valid key would
/// use (or abuse) them: a retry is free only on a route whose vendor honours the key, only for the same
/// request, and only a few times; everywhere else a reused key is charged like any request.
/// </summary>
[Collection(LedgerCollection.Name)]
public sealed class IdempotencyTests(RedisFixture redis, PostgresFixture postgres)
{
    private const int MaxReplays = 2;

    /// <summary>
    /// prod may spend 5 credits a day. <c>/orders</c> (cost 1) is a vendor call the vendor deduplicates by its
    /// Idempotency-Key; <c>/quotes</c> (cost 1) is not.
    /// </summary>
    private TestProxyConfig Config(VendorServer vendor, string prefix, string? ledger = null)
    {
        var config = new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("prod", 5), ("test", null))
            .Route("orders", pool: "daily", cost: 1)
            .Set("ReverseProxy:Routes:orders:Metadata:Quota.VendorIdempotent", "true")
            .Set("ReverseProxy:Routes:orders:Metadata:Quota.MaxReplays", MaxReplays.ToString(System.Globalization.CultureInfo.InvariantCulture))
            .Route("quotes", pool: "daily", cost: 1)
            .ApiKey("prod-key", "prod")
            .Redis(redis.ConnectionString, prefix, TimeSpan.FromMilliseconds(50)); // the default store timeout
        return ledger is null ? config : config.Set("Quota:Ledger:ConnectionString", ledger).Set("Quota:Ledger:PollInterval", "00:00:00.050");
    }

    private static async Task<HttpResponseMessage> SendAsync(ProxyInstance proxy, HttpMethod method, string path, string? key, string? body = null)
    {
        using var message = new HttpRequestMessage(method, path);
        message.Headers.Add("X-Api-Key", "prod-key");
        if (key is not null)
        {
            message.Headers.Add("Idempotency-Key", key);
        }

        if (body is not null)
        {
            message.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        return await proxy.Client.SendAsync(message);
    }

    [Fact]
    public async Task OnAVendorIdempotentRoute_RetriesAreFreeUpToMaxReplays_ThenCharged_BilledAsReplayEvents_AndTheKeyReachesTheVendor()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var ledger = await postgres.NewDatabaseAsync();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, prefix, ledger));

        var statuses = new List<HttpStatusCode>();
        var used = new List<string?>();
        for (var i = 0; i < 1 + MaxReplays + 1; i++)
        {
            using var response = await SendAsync(proxy, HttpMethod.Post, "/orders/new", "order-42", """{"sku":"A1"}""");
            statuses.Add(response.StatusCode);
            used.Add(response.Header("X-RateLimit-Used"));
        }

        var drained = await LedgerDrain.UntilAsync(redis.Connection.GetDatabase(), ledger, expectedCredits: 2, [new RedisKeys(prefix).EventStream("daily")]);
        await using var connection = new NpgsqlConnection(ledger);
        var kinds = (await connection.QueryAsync<(string Kind, long Credits)>("SELECT kind, credits FROM usage_events ORDER BY occurred_at, event_id")).ToList();

        Assert.All(statuses, status => Assert.Equal(HttpStatusCode.OK, status));
        // The first request and the retry past its two replays are charged; the replays are not.
        Assert.Equal(["1", "1", "1", "2"], used);
        Assert.Equal(4, vendor.CallsTo("/new"));
        Assert.All(vendor.Calls, call => Assert.Equal(["order-42"], VendorServer.HeaderValues(call, "Idempotency-Key")));
        Assert.Equal([("debit", 1L), ("replay", 0L), ("replay", 0L), ("debit", 1L)], kinds);
        Assert.Equal((2, 4), drained);
    }

    [Theory]
    [InlineData("POST", "/orders/new", """{"sku":"B2"}""")] // another body
    [InlineData("POST", "/orders/other", """{"sku":"A1"}""")] // another path
    [InlineData("PUT", "/orders/new", """{"sku":"A1"}""")] // another method
    public async Task AKeyReusedForAnotherRequest_Gets422ProblemJson_CostsNothing_AndTheVendorIsNotCalled(string method, string path, string body)
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, RedisFixture.NewKeyPrefix()));

        using var first = await SendAsync(proxy, HttpMethod.Post, "/orders/new", "order-42", """{"sku":"A1"}""");
        using var other = await SendAsync(proxy, new HttpMethod(method), path, "order-42", body);
        using var next = await SendAsync(proxy, HttpMethod.Get, "/quotes/AAPL", null);

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, other.StatusCode);
        Assert.Equal("application/problem+json", other.Content.Headers.ContentType!.MediaType);
        Assert.Contains("urn:quotaproxy:problem:idempotency-key-reused", await other.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Single(vendor.Calls, call => call.RequestMessage!.Path is "/new" or "/other");
        Assert.Equal("2", next.Header("X-RateLimit-Used"));
    }

    /// <summary>
    /// The property: whatever one tenant sends (routes, methods, bodies, keys fresh, reused or malformed, in
    /// any order), the vendor sees at most its allowance of charged calls plus, on the vendor-idempotent route,
    /// at most <see cref="MaxReplays"/> free retries per key that was charged; and per tenant, Redis's counter
    /// = the ledger's net credits = the vendor's calls less the ledger's 0-credit replays (every route costs 1).
    /// </summary>
    [Fact]
    public async Task AnySequenceOfRequestsFromOneTenant_GetsNoMoreVendorCallsThanItsAllowance_PlusTheBoundedReplays()
    {
        for (var seed = 1; seed <= 12; seed++)
        {
            using var vendor = new VendorServer();
            var prefix = RedisFixture.NewKeyPrefix();
            var ledger = await postgres.NewDatabaseAsync();
            await using var proxy = await ProxyInstance.StartAsync(Config(vendor, prefix, ledger));
            var random = new Random(seed);
            var sent = new List<string>();
            for (var i = 0; i < 40; i++)
            {
                // Mostly the same request under a few keys, so that retries, replays past their bound and
                // conflicts all happen; now and then another method, path or body, a fresh or malformed key.
                var route = random.Next(3) == 0 ? "quotes" : "orders";
                var method = random.Next(8) == 0 ? HttpMethod.Put : HttpMethod.Post;
                var path = $"/{route}/{route[0]}{(random.Next(8) == 0 ? 1 : 0)}";
                var body = random.Next(8) == 0 ? """{"n":1}""" : """{"n":0}""";
                var key = random.Next(16) switch
                {
                    0 or 1 => null,
                    2 or 3 => $"fresh-{i}",
                    4 => new string('k', 201), // malformed: answered 400
                    _ => $"key-{random.Next(3)}",
                };
                using var response = await SendAsync(proxy, method, path, key, body);
                // 503 only if the store missed its default timeout under the suite's load: it costs nothing either way.
                Assert.Contains(response.StatusCode, new[] { HttpStatusCode.OK, HttpStatusCode.TooManyRequests, HttpStatusCode.UnprocessableEntity, HttpStatusCode.BadRequest, HttpStatusCode.ServiceUnavailable });
                sent.Add($"{method} /{route} {key} {body} -> {(int)response.StatusCode}");
            }

            var charged = (long?)await redis.Connection.GetDatabase().HashGetAsync(new RedisKeys(prefix).PoolUsage("daily"), "t:prod") ?? 0;
            var (billed, _) = await LedgerDrain.UntilAsync(redis.Connection.GetDatabase(), ledger, charged, [new RedisKeys(prefix).EventStream("daily")]);
            await using var connection = new NpgsqlConnection(ledger);
            var replays = await connection.ExecuteScalarAsync<long>("SELECT count(*) FROM usage_events WHERE kind = 'replay' AND tenant = 'prod'");
            // The keys the vendor-idempotent route forwarded (its vendor paths are /o0 and /o1).
            var keyedOrders = vendor.Calls
                .Where(call => call.RequestMessage!.Path!.StartsWith("/o", StringComparison.Ordinal))
                .SelectMany(call => VendorServer.HeaderValues(call, "Idempotency-Key"))
                .Distinct()
                .Count();
            var trace = $"seed {seed}: {vendor.Calls.Count} vendor calls, {charged} credits charged, {keyedOrders} keys on the idempotent route\n" + string.Join('\n', sent);
            Assert.True(charged <= 5, trace);
            Assert.True(vendor.Calls.Count <= charged + (MaxReplays * keyedOrders), trace);
            Assert.True(billed == charged && vendor.Calls.Count == charged + replays, $"{trace}\nledger {billed}, replays {replays}");
        }
    }
}
