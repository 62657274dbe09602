using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using QuotaProxy.Testing;
using StackExchange.Redis;

namespace QuotaProxy.Tests;

/// <summary>
/// Redis going away and coming back under a running proxy. Each test owns its redis-server process, so that it
/// can kill it; the shared fixture's server is never stopped.
/// </summary>
public sealed class StoreOutageTests : IAsyncLifetime
{
    private static readonly TimeSpan StoreTimeout = TimeSpan.FromMilliseconds(50);
    private readonly VendorServer _vendor = new();
    private LocalRedisServer _redis = null!;
    private ProxyInstance _proxy = null!;

    public async Task InitializeAsync()
    {
        _redis = await LocalRedisServer.StartAsync();
        _proxy = await StartProxyAsync(StoreTimeout);
    }

    private Task<ProxyInstance> StartProxyAsync(TimeSpan storeTimeout) => ProxyInstance.StartAsync(new TestProxyConfig(_vendor.Url)
        .Pool("vendor-daily", 1000, "1d", "UTC", ("prod", null))
        .Route("quotes", pool: "vendor-daily")
        .ApiKey("prod-key", "prod")
        .Redis(_redis.ConnectionString, RedisFixture.NewKeyPrefix(), storeTimeout));

    public async Task DisposeAsync()
    {
        await _proxy.DisposeAsync();
        await _redis.DisposeAsync();
        _vendor.Dispose();
    }

    private async Task<(HttpStatusCode Status, TimeSpan Elapsed, HttpResponseMessage Response)> SendAsync(ProxyInstance? proxy = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/quotes/AAPL");
        request.Headers.Add("X-Api-Key", "prod-key");
        var watch = Stopwatch.StartNew();
        var response = await (proxy ?? _proxy).Client.SendAsync(request).WaitAsync(TimeSpan.FromSeconds(10));
        return (response.StatusCode, watch.Elapsed, response);
    }

    private Task<HttpStatusCode> EventuallyAsync(HttpStatusCode wanted, TimeSpan within) => EventuallyAsync(_proxy, wanted, within);

    private async Task<HttpStatusCode> EventuallyAsync(ProxyInstance proxy, HttpStatusCode wanted, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        HttpStatusCode last;
        do
        {
            var (status, _, response) = await SendAsync(proxy);
            response.Dispose();
            last = status;
            if (last == wanted)
            {
                return last;
            }

            await Task.Delay(100);
        }
        while (DateTime.UtcNow < deadline);
        return last;
    }

    [Fact]
    public async Task RedisStopped_Answers503Fast_ThenAdmitsAgainWhenItReturns()
    {
        Assert.Equal(HttpStatusCode.OK, (await SendAsync()).Status);
        await _redis.StopAsync();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, await EventuallyAsync(HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(5)));
        var outage = new List<TimeSpan>();
        for (var i = 0; i < 5; i++)
        {
            var (status, elapsed, response) = await SendAsync();
            using (response)
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
                Assert.Equal("1", response.Header("Retry-After"));
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
                Assert.Equal(503, problem.GetProperty("status").GetInt32());
            }

            outage.Add(elapsed);
        }

        // "Never a hang": far inside a generous bound (the store timeout itself is 50 ms).
        Assert.All(outage, elapsed => Assert.InRange(elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(1)));
        var callsDuringOutage = _vendor.Calls.Count;

        await _redis.StartAgainAsync();
        Assert.Equal(HttpStatusCode.OK, await EventuallyAsync(HttpStatusCode.OK, TimeSpan.FromSeconds(15)));
        Assert.Equal(1, callsDuringOutage);
    }

    [Fact]
    public async Task ScriptCacheFlushed_StillAdmits()
    {
        // Its own proxy with a 2 s store timeout: the reload after NOSCRIPT is two round trips and a script
        // compile, which a loaded CI machine can stretch past 50 ms; the timeout is not what this test is about.
        await using var proxy = await StartProxyAsync(TimeSpan.FromSeconds(2));
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(proxy)).Status);
        await using (var admin = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString + ",allowAdmin=true"))
        {
            await admin.GetServer(admin.GetEndPoints()[0]).ScriptFlushAsync();
        }

        var (status, _, response) = await SendAsync(proxy);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("2", response.Header("X-RateLimit-Used"));
        response.Dispose();
    }

    [Fact]
    public async Task CallerLeavesWhileRedisIsFrozen_NoAnswerIsForced_AndTheDecisionThatLandsLaterIsGivenBack()
    {
        // A store timeout long enough for the caller to leave first, and for the decision to land after the thaw.
        var prefix = RedisFixture.NewKeyPrefix();
        await using var proxy = await ProxyInstance.StartAsync(new TestProxyConfig(_vendor.Url)
            .Pool("vendor-daily", 1000, "1d", "UTC", ("prod", null))
            .Route("quotes", pool: "vendor-daily")
            .ApiKey("prod-key", "prod")
            .Redis(_redis.ConnectionString, prefix, TimeSpan.FromSeconds(3)));
        _redis.Pause();
        using var impatient = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        using var request = new HttpRequestMessage(HttpMethod.Get, "/quotes/AAPL");
        request.Headers.Add("X-Api-Key", "prod-key");

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => proxy.Client.SendAsync(request, impatient.Token));
        await Task.Delay(500);
        _redis.Resume();
        var metrics = await proxy.MetricsWhenAsync(m => m.Value("quota_proxy_store_abandoned_decisions_total", ("outcome", "refunded")) >= 1);
        await using var connection = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString);
        var counters = await connection.GetDatabase().HashGetAllAsync(new Enforcement.Redis.RedisKeys(prefix).PoolUsage("vendor-daily"));

        Assert.Equal(1, metrics.Value("quota_proxy_requests_total", ("route", "quotes"), ("pool", "vendor-daily"), ("tenant", "prod"), ("outcome", "client_closed")));
        Assert.Equal(1, metrics.Value("quota_proxy_store_abandoned_decisions_total", ("outcome", "refunded")));
        Assert.Empty(_vendor.Calls);
        // The decision landed (and opened the window) once Redis thawed, and was given back.
        Assert.Equal(0, (long)counters.Single(c => c.Name == "pool").Value);
        Assert.Equal(0, (long)counters.Single(c => c.Name == "t:prod").Value);
        Assert.DoesNotContain(proxy.Logs.Lines, line => line.Contains("[1108]", StringComparison.Ordinal));
    }

    [Fact]
    public async Task StartWithRedisAbsent_TheProxyStartsServesUnmeteredRoutesAnswers503_AndMetersOnceRedisComesUp()
    {
        await using var absent = LocalRedisServer.NotStarted();
        var prefix = RedisFixture.NewKeyPrefix();
        var watch = Stopwatch.StartNew();
        await using var proxy = await ProxyInstance.StartAsync(new TestProxyConfig(_vendor.Url)
            .Pool("vendor-daily", 1000, "1d", "UTC", ("prod", null))
            .Route("quotes", pool: "vendor-daily")
            .Route("health")
            .ApiKey("prod-key", "prod")
            .Redis(absent.ConnectionString, prefix, StoreTimeout));
        var started = watch.Elapsed;

        using var unmetered = await proxy.Client.GetAsync("/health/ping");
        var (metered, elapsed, response) = await SendAsync(proxy);
        response.Dispose();
        using var readyz = await proxy.Client.GetAsync("/readyz");
        await absent.StartAgainAsync();
        Assert.Equal(HttpStatusCode.OK, await EventuallyAsync(proxy, HttpStatusCode.OK, TimeSpan.FromSeconds(15)));
        await using var connection = await ConnectionMultiplexer.ConnectAsync(absent.ConnectionString);
        var pool = (long)await connection.GetDatabase().HashGetAsync(new Enforcement.Redis.RedisKeys(prefix).PoolUsage("vendor-daily"), "pool");

        Assert.InRange(started, TimeSpan.Zero, TimeSpan.FromSeconds(15));
        Assert.Equal(HttpStatusCode.OK, unmetered.StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, metered);
        Assert.InRange(elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(1));
        Assert.Equal(HttpStatusCode.OK, readyz.StatusCode);
        // The invariant: what Redis counted is what the vendor was called for (the unmetered call aside).
        Assert.Equal(_vendor.Calls.Count(c => c.RequestMessage!.Path == "/AAPL"), pool);
        Assert.Equal(1, pool);
    }

    [Fact]
    public async Task RedisWithoutAnAppendOnlyFile_IsNamedInAWarningAtStart_AndOneWithItIsNot()
    {
        await using var persistent = await LocalRedisServer.StartAsync(appendOnly: true);
        await using var proxy = await ProxyInstance.StartAsync(new TestProxyConfig(_vendor.Url)
            .Pool("vendor-daily", 1000, "1d", "UTC", ("prod", null))
            .Route("quotes", pool: "vendor-daily")
            .ApiKey("prod-key", "prod")
            .Redis(persistent.ConnectionString, RedisFixture.NewKeyPrefix(), StoreTimeout));

        var warning = Assert.Single(_proxy.Logs.Lines, line => line.Contains("[1112]", StringComparison.Ordinal));
        Assert.Contains(_redis.ConnectionString, warning);
        Assert.DoesNotContain(proxy.Logs.Lines, line => line.Contains("[1112]", StringComparison.Ordinal));
    }
}
