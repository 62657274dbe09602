using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using QuotaProxy.Enforcement.Redis;
using QuotaProxy.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace QuotaProxy.Tests;

/// <summary>
/// Rates, routes on several pools, vendor 429s and the soft-limit metric at the door: the real proxy on real Redis, WireMock as the
/// vendor. What the caller sees (status, Retry-After, problem body) and what the vendor received.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class RateAndVendorLimitTests(RedisFixture redis)
{
    private TestProxyConfig Config(VendorServer vendor, string window = "1d") => new TestProxyConfig(vendor.Url)
        .Pool("daily", 100, window, "UTC", ("prod", null), ("e2e", null))
        .Route("downloads", pool: "daily", cost: 1)
        .ApiKey("prod-key", "prod")
        .ApiKey("e2e-key", "e2e")
        .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix(), timeout: TimeSpan.FromSeconds(2));

    [Fact]
    public async Task TenantOverItsRate_Gets429WithRetryAfterUntilTheNextCreditFits_AndTheVendorIsNotCalled()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor).Set("Quota:Pools:daily:Tenants:e2e:Rate", "2/m"));

        using var first = await proxy.GetAsync("e2e-key");
        using var second = await proxy.GetAsync("e2e-key");
        using var prod = await proxy.GetAsync("prod-key");

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        Assert.Equal("30", second.Header("Retry-After"));
        Assert.Equal("\"daily\";r=99;t=30", second.Header("RateLimit"));
        var problem = await second.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("urn:quotaproxy:problem:rate-limited", problem.GetProperty("type").GetString());
        Assert.Equal("rate", problem.GetProperty("limitedBy").GetString());
        Assert.Equal("e2e", problem.GetProperty("limitingNode").GetString());
        Assert.Equal("2/m", problem.GetProperty("rate").GetString());
        Assert.InRange(problem.GetProperty("retryAfterMs").GetInt64(), 25_000, 30_000);
        Assert.Equal(HttpStatusCode.OK, prod.StatusCode);
        Assert.Equal(2, vendor.Calls.Count);
    }

    [Fact]
    public async Task RouteOnTwoPools_StopsAtTheTighterOne_ChargesNeitherOnA429_AndKeepsBothUnderOneHashTag()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var config = new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("prod", null))
            .Pool("hourly", 2, "1h", "UTC", ("prod", null))
            .Route("downloads", pool: "daily, hourly", cost: 1)
            .ApiKey("prod-key", "prod")
            .Redis(redis.ConnectionString, prefix, timeout: TimeSpan.FromSeconds(2));
        await using var proxy = await ProxyInstance.StartAsync(config);

        using var first = await proxy.GetAsync("prod-key");
        using var second = await proxy.GetAsync("prod-key");
        using var third = await proxy.GetAsync("prod-key");

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], new[] { first, second, third }.Select(r => r.StatusCode));
        Assert.Equal("\"daily\";q=100;w=86400, \"hourly\";q=2;w=3600", second.Header("RateLimit-Policy"));
        Assert.StartsWith("\"daily\";r=98;t=", second.Header("RateLimit"), StringComparison.Ordinal);
        Assert.Equal("0", second.Header("X-RateLimit-Remaining"));
        var problem = await third.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("hourly", problem.GetProperty("pool").GetString());
        Assert.Equal("pool", problem.GetProperty("limitedBy").GetString());
        Assert.Equal(2, vendor.Calls.Count);

        // Both pools' counters sit under the tag {daily}: one decision, one cluster slot.
        var database = redis.Connection.GetDatabase();
        Assert.Equal(2, (long)await database.HashGetAsync(new RedisKeys(prefix).PoolUsage("daily"), "pool"));
        Assert.Equal(2, (long)await database.HashGetAsync(new RedisKeys(prefix).PoolUsage("hourly", "daily"), "pool"));
    }

    [Fact]
    public async Task MaxInFlight_RejectsTheRequestBeyondIt_AndFreesTheSlotWhenAResponseEnds_OrItsClientGoesAway()
    {
        using var vendor = new VendorServer();
        vendor.Server.Reset();
        vendor.Server.Given(Request.Create().UsingAnyMethod())
            .RespondWith(Response.Create().WithStatusCode(200).WithBody("{\"vendor\":\"slow\"}").WithDelay(TimeSpan.FromMilliseconds(800)));
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor).Set("Quota:Pools:daily:Tenants:e2e:MaxInFlight", "1"));

        var slow = proxy.GetAsync("e2e-key");
        await Task.Delay(200);
        using var beyond = await proxy.GetAsync("e2e-key");
        using var other = await proxy.GetAsync("prod-key");
        using var done = await slow;
        using var next = await proxy.GetAsync("e2e-key");

        Assert.Equal(HttpStatusCode.TooManyRequests, beyond.StatusCode);
        Assert.Equal("1", beyond.Header("Retry-After"));
        var problem = await beyond.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("urn:quotaproxy:problem:concurrency-limited", problem.GetProperty("type").GetString());
        Assert.Equal("concurrency", problem.GetProperty("limitedBy").GetString());
        Assert.Equal(1, problem.GetProperty("maxInFlight").GetInt64());
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        Assert.Equal(HttpStatusCode.OK, done.StatusCode);
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);

        // A client that gives up while its request is in flight frees its slot as the proxy sees it go.
        using var impatient = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        using var message = new HttpRequestMessage(HttpMethod.Get, "/downloads/file");
        message.Headers.Add("X-Api-Key", "e2e-key");
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => proxy.Client.SendAsync(message, impatient.Token));
        await Task.Delay(300);
        using var afterAbort = await proxy.GetAsync("e2e-key");
        Assert.Equal(HttpStatusCode.OK, afterAbort.StatusCode);
    }

    [Fact]
    public async Task Vendor429_ClosesThePoolForEveryTenantUntilItsRetryAfter_ThenItReopensByItself()
    {
        using var vendor = new VendorServer();
        vendor.AnswersTooManyRequests(retryAfter: "2");
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));

        using var limited = await proxy.GetAsync("prod-key");
        var closedAt = DateTimeOffset.UtcNow;
        using var held = await proxy.GetAsync("e2e-key");
        vendor.AnswersOk();
        await Task.Delay(TimeSpan.FromSeconds(2.2) - (DateTimeOffset.UtcNow - closedAt));
        using var reopened = await proxy.GetAsync("e2e-key");

        // The caller whose request met the vendor's 429 gets the vendor's answer.
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.Equal("{\"vendor\":\"slow down\"}", await limited.Content.ReadAsStringAsync());
        // Everyone else is held back by the proxy, without calling the vendor.
        Assert.Equal(HttpStatusCode.TooManyRequests, held.StatusCode);
        Assert.InRange(long.Parse(held.Header("Retry-After"), CultureInfo.InvariantCulture), 1, 2);
        var problem = await held.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("urn:quotaproxy:problem:vendor-limited", problem.GetProperty("type").GetString());
        Assert.Equal("vendor", problem.GetProperty("limitedBy").GetString());
        Assert.Equal("daily", problem.GetProperty("limitingNode").GetString());
        Assert.Equal(HttpStatusCode.OK, reopened.StatusCode);
        Assert.Equal(2, vendor.Calls.Count);
    }

    [Fact]
    public async Task Vendor429WithAnHttpDate_ClosesUntilThatDate()
    {
        using var vendor = new VendorServer();
        var until = DateTimeOffset.UtcNow.AddMinutes(10);
        vendor.AnswersTooManyRequests(retryAfter: until.ToString("r", CultureInfo.InvariantCulture));
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));

        using var limited = await proxy.GetAsync("prod-key");
        using var held = await proxy.GetAsync("prod-key");

        Assert.Equal(HttpStatusCode.TooManyRequests, held.StatusCode);
        var problem = await held.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(until.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture), problem.GetProperty("closedUntil").GetString());
        Assert.InRange(long.Parse(held.Header("Retry-After"), CultureInfo.InvariantCulture), 595, 600);
        Assert.Single(vendor.Calls);
    }

    [Fact]
    public async Task Vendor429WithoutRetryAfter_ClosesUntilTheWindowsEnd()
    {
        using var vendor = new VendorServer();
        vendor.AnswersTooManyRequests(retryAfter: null);
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, window: "1h"));

        using var limited = await proxy.GetAsync("prod-key");
        using var held = await proxy.GetAsync("e2e-key");

        Assert.Equal(HttpStatusCode.TooManyRequests, held.StatusCode);
        var problem = await held.Content.ReadFromJsonAsync<JsonElement>();
        var windowEnd = DateTimeOffset.FromUnixTimeSeconds(long.Parse(held.Header("X-RateLimit-Reset"), CultureInfo.InvariantCulture));
        Assert.Equal(windowEnd.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture), problem.GetProperty("closedUntil").GetString());
        Assert.Single(vendor.Calls);
    }

    [Theory]
    [InlineData("Fri, 31 Dec 9999 23:59:59 GMT")]
    [InlineData("99999999999")]
    public async Task Vendor429WithARetryAfterOfYears_ClosesThePoolForItsMaxClosureOnly_AndTheAdminApiReopensIt(string retryAfter)
    {
        using var vendor = new VendorServer();
        vendor.AnswersTooManyRequests(retryAfter);
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor).Set("Quota:Pools:daily:MaxClosure", "00:10:00").Admin(LoopbackPorts.Free(), "admin-key"));

        using var limited = await proxy.GetAsync("prod-key");
        using var held = await proxy.GetAsync("e2e-key");
        vendor.AnswersOk();
        using var reopen = new HttpRequestMessage(HttpMethod.Post, "/admin/v1/pools/daily/reopen");
        reopen.Headers.Add("X-Admin-Key", "admin-key");
        using var reopened = await proxy.Admin!.SendAsync(reopen);
        using var after = await proxy.GetAsync("e2e-key");

        Assert.Equal(HttpStatusCode.TooManyRequests, held.StatusCode);
        Assert.InRange(long.Parse(held.Header("Retry-After"), CultureInfo.InvariantCulture), 595, 600);
        Assert.Contains(proxy.Logs.Lines, line => line.Contains("[1010]", StringComparison.Ordinal) && line.Contains("pool daily", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.OK, reopened.StatusCode);
        var status = await reopened.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(JsonValueKind.Null, status.GetProperty("closedUntil").ValueKind);
        Assert.Contains(proxy.Logs.Lines, line => line.Contains("[1302]", StringComparison.Ordinal) && line.Contains("reopened by ops", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        Assert.Equal(2, vendor.Calls.Count);
    }

    [Fact]
    public async Task CrossingASoftLimit_IsCountedInTheMetrics_OncePerWindow()
    {
        using var vendor = new VendorServer();
        var config = Config(vendor).Set("Quota:Pools:daily:Tenants:e2e:SoftLimit", "2");
        await using var proxy = await ProxyInstance.StartAsync(config);

        for (var i = 0; i < 5; i++)
        {
            using var response = await proxy.GetAsync("e2e-key");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var metrics = await proxy.MetricsAsync();
        Assert.Equal(1, metrics.Value("quota_proxy_soft_limit_crossings_total", ("pool", "daily"), ("node", "e2e")));
        Assert.Equal(1, metrics.Value("quota_proxy_soft_limit_crossings_total"));
    }
}
