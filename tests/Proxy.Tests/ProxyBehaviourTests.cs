using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>What a caller and the vendor see at the door: the real proxy on Redis, WireMock as the vendor.</summary>
[Collection(RedisCollection.Name)]
public sealed class ProxyBehaviourTests(RedisFixture redis) : IAsyncLifetime
{
    private readonly VendorServer _vendor = new();
    private ProxyInstance _proxy = null!;

    private TestProxyConfig Config() => new TestProxyConfig(_vendor.Url)
        .Pool("vendor-daily", 10, "1d", "UTC", ("prod", null), ("test", 4))
        .Pool("other", 10, "1d", "UTC", ("dev", null))
        .Route("quotes", pool: "vendor-daily")
        .Route("reports", pool: "vendor-daily", cost: 3)
        .Route("dev-only", pool: "other")
        .Route("open")
        .ApiKey("prod-key", "prod")
        .ApiKey("test-key", "test")
        .VendorCredential("X-Vendor-Key", "vendor-secret")
        .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix());

    public async Task InitializeAsync() => _proxy = await ProxyInstance.StartAsync(Config());

    public async Task DisposeAsync()
    {
        await _proxy.DisposeAsync();
        _vendor.Dispose();
    }

    private static HttpRequestMessage Get(string path, string? apiKey = null, string? environment = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (apiKey is not null)
        {
            request.Headers.Add("X-Api-Key", apiKey);
        }

        if (environment is not null)
        {
            request.Headers.Add("X-Environment", environment);
        }

        return request;
    }


    [Fact]
    public async Task Admitted_ForwardsWithRateLimitHeaders()
    {
        using var response = await _proxy.Client.SendAsync(Get("/reports/daily", "test-key"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("{\"vendor\":\"ok\"}", await response.Content.ReadAsStringAsync());
        Assert.Equal("\"vendor-daily\";q=4;w=86400", response.Header("RateLimit-Policy"));
        Assert.Matches("^\"vendor-daily\";r=1;t=[0-9]+$", response.Header("RateLimit"));
        Assert.Equal("4", response.Header("X-RateLimit-Limit"));
        Assert.Equal("1", response.Header("X-RateLimit-Remaining"));
        Assert.Equal("3", response.Header("X-RateLimit-Used"));
        var reset = DateTimeOffset.FromUnixTimeSeconds(long.Parse(response.Header("X-RateLimit-Reset"), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(TimeSpan.Zero, reset.TimeOfDay);
        Assert.Equal(1, _vendor.CallsTo("/daily"));
    }

    [Fact]
    public async Task QuotaSpent_Answers429WithRetryAfterAndProblem_WithoutCallingTheVendor()
    {
        (await _proxy.Client.SendAsync(Get("/reports/a", "test-key"))).Dispose();

        using var response = await _proxy.Client.SendAsync(Get("/reports/b", "test-key"));

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var retryAfter = response.Headers.RetryAfter?.Delta;
        Assert.NotNull(retryAfter);
        // The daily window ends at the next UTC midnight after the response was made, whenever the test runs.
        var answeredAt = response.Headers.Date!.Value;
        var reset = DateTimeOffset.FromUnixTimeSeconds(long.Parse(response.Header("X-RateLimit-Reset"), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(TimeSpan.Zero, reset.TimeOfDay);
        Assert.InRange(reset - answeredAt, TimeSpan.Zero, TimeSpan.FromDays(1));
        Assert.InRange(retryAfter.Value.TotalSeconds, (reset - answeredAt).TotalSeconds - 5, (reset - answeredAt).TotalSeconds + 5);
        Assert.Equal("1", response.Header("X-RateLimit-Remaining"));
        Assert.Equal("3", response.Header("X-RateLimit-Used"));

        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(429, problem.GetProperty("status").GetInt32());
        Assert.Equal("vendor-daily", problem.GetProperty("pool").GetString());
        Assert.Equal("test", problem.GetProperty("tenant").GetString());
        Assert.Equal(3, problem.GetProperty("cost").GetInt64());
        Assert.Equal(1, problem.GetProperty("remaining").GetInt64());
        Assert.Equal("tenant", problem.GetProperty("limitedBy").GetString());
        Assert.Equal(reset.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture), problem.GetProperty("reset").GetString());
        Assert.Contains("resets at", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, _vendor.CallsTo("/b"));
    }

    [Fact]
    public async Task PoolSpent_Answers429LimitedByPool()
    {
        for (var i = 0; i < 3; i++)
        {
            (await _proxy.Client.SendAsync(Get("/reports/x", "prod-key"))).Dispose();
        }

        using var response = await _proxy.Client.SendAsync(Get("/reports/x", "prod-key"));

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("pool", problem.GetProperty("limitedBy").GetString());
        Assert.Equal(1, problem.GetProperty("remaining").GetInt64());
        Assert.Equal(3, _vendor.CallsTo("/x"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("not-a-known-key")]
    public async Task UnidentifiedCaller_Answers401_WithoutCallingTheVendor(string? apiKey)
    {
        using var response = await _proxy.Client.SendAsync(Get("/quotes/AAPL", apiKey, environment: "prod"));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(401, problem.GetProperty("status").GetInt32());
        Assert.Empty(_vendor.Calls);
    }

    [Fact]
    public async Task TenantNotInThePool_Answers403_WithoutCallingTheVendor()
    {
        using var response = await _proxy.Client.SendAsync(Get("/dev-only/x", "prod-key"));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("prod", problem.GetProperty("tenant").GetString());
        Assert.Equal("other", problem.GetProperty("pool").GetString());
        Assert.Empty(_vendor.Calls);
    }

    [Fact]
    public async Task Forwarded_StripsIdentityHeadersAndAddsTheVendorCredential()
    {
        using var request = Get("/quotes/AAPL", "prod-key", environment: "prod");
        request.Headers.Add("X-Request-Id", "abc-123");

        using var response = await _proxy.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var call = Assert.Single(_vendor.Calls);
        Assert.Equal("/AAPL", call.RequestMessage!.Path);
        Assert.Empty(VendorServer.HeaderValues(call, "X-Api-Key"));
        Assert.Empty(VendorServer.HeaderValues(call, "X-Environment"));
        Assert.Equal(["vendor-secret"], VendorServer.HeaderValues(call, "X-Vendor-Key"));
        Assert.Equal(["abc-123"], VendorServer.HeaderValues(call, "X-Request-Id"));
    }

    [Fact]
    public async Task CallerSendsItsOwnVendorCredential_TheProxyReplacesIt()
    {
        using var request = Get("/quotes/AAPL", "prod-key");
        request.Headers.Add("X-Vendor-Key", "forged");

        (await _proxy.Client.SendAsync(request)).Dispose();

        Assert.Equal(["vendor-secret"], VendorServer.HeaderValues(Assert.Single(_vendor.Calls), "X-Vendor-Key"));
    }

    [Fact]
    public async Task UnmeteredRoute_PassesWithoutIdentityOrQuotaHeaders_NorTheVendorCredential()
    {
        using var response = await _proxy.Client.SendAsync(Get("/open/status"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("RateLimit"));
        Assert.False(response.Headers.Contains("X-RateLimit-Remaining"));
        Assert.Equal(1, _vendor.CallsTo("/status"));
        // The vendor's secret would pay for calls no quota counts: an unmetered route must ask for it.
        Assert.Empty(VendorServer.HeaderValues(Assert.Single(_vendor.Calls), "X-Vendor-Key"));
    }

    [Fact]
    public async Task UnmeteredRouteThatOptsIn_GetsTheVendorCredential()
    {
        await using var proxy = await ProxyInstance.StartAsync(Config().Set("ReverseProxy:Routes:open:Metadata:Quota.ForwardCredential", "true"));

        using var response = await proxy.Client.SendAsync(Get("/open/status"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(["vendor-secret"], VendorServer.HeaderValues(Assert.Single(_vendor.Calls), "X-Vendor-Key"));
    }

    [Fact]
    public async Task QuotaDisabled_ForwardsEverything_AndSaysSoAtStart()
    {
        await using var proxy = await ProxyInstance.StartAsync(Config().Set("Quota:Enabled", "false"));

        using var response = await proxy.Client.SendAsync(Get("/quotes/AAPL"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(proxy.Logs.Lines, line => line.Contains("[1011]", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TenantHeader_NotTrusted_Answers401()
    {
        using var response = await _proxy.Client.SendAsync(Get("/quotes/AAPL", environment: "prod"));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Empty(_vendor.Calls);
    }
}

/// <summary>Identity and header options that need a proxy configured differently from the defaults.</summary>
[Collection(RedisCollection.Name)]
public sealed class ProxyIdentityOptionsTests(RedisFixture redis) : IDisposable
{
    private readonly VendorServer _vendor = new();

    private TestProxyConfig Config() => new TestProxyConfig(_vendor.Url)
        .Pool("vendor-daily", 10, "1d", "UTC", ("prod", null))
        .Route("quotes", pool: "vendor-daily")
        .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix());

    public void Dispose() => _vendor.Dispose();

    private static HttpRequestMessage FromEnvironment(string environment)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/quotes/AAPL");
        request.Headers.Add("X-Environment", environment);
        return request;
    }

    [Fact]
    public async Task TenantHeader_TrustedFromThisNetwork_IdentifiesAndIsStripped()
    {
        await using var proxy = await ProxyInstance.StartAsync(Config().TrustTenantHeader("127.0.0.0/8"));

        using var response = await proxy.Client.SendAsync(FromEnvironment("prod"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("1", response.Header("X-RateLimit-Used"));
        Assert.Empty(VendorServer.HeaderValues(Assert.Single(_vendor.Calls), "X-Environment"));
    }

    [Fact]
    public async Task TenantHeader_TrustedOnlyFromAnotherNetwork_Answers401()
    {
        await using var proxy = await ProxyInstance.StartAsync(Config().TrustTenantHeader("10.0.0.0/8"));

        using var response = await proxy.Client.SendAsync(FromEnvironment("prod"));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Empty(_vendor.Calls);
    }

    [Fact]
    public async Task ForwardedFor_FromACallerThatIsNoKnownProxy_IsIgnored_TheSocketsAddressDecides()
    {
        await using var proxy = await ProxyInstance.StartAsync(Config().TrustTenantHeader("10.0.0.0/8"));
        using var spoofed = FromEnvironment("prod");
        spoofed.Headers.Add("X-Forwarded-For", "10.1.2.3");

        using var response = await proxy.Client.SendAsync(spoofed);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Empty(_vendor.Calls);
    }

    [Fact]
    public async Task ForwardedFor_FromAKnownProxy_NamesTheCaller()
    {
        await using var proxy = await ProxyInstance.StartAsync(Config().TrustTenantHeader("10.0.0.0/8").Set("Quota:Identity:KnownProxies:0", "127.0.0.1"));
        using var forwarded = FromEnvironment("prod");
        forwarded.Headers.Add("X-Forwarded-For", "10.1.2.3");
        using var direct = FromEnvironment("prod");

        using var viaProxy = await proxy.Client.SendAsync(forwarded);
        using var notViaProxy = await proxy.Client.SendAsync(direct);

        Assert.Equal(HttpStatusCode.OK, viaProxy.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, notViaProxy.StatusCode);
    }

    [Fact]
    public async Task LegacyHeadersOff_SendsOnlyTheIetfPair()
    {
        await using var proxy = await ProxyInstance.StartAsync(Config().TrustTenantHeader().Set("Quota:Headers:Legacy", "false"));

        using var response = await proxy.Client.SendAsync(FromEnvironment("prod"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.Contains("RateLimit"));
        Assert.True(response.Headers.Contains("RateLimit-Policy"));
        Assert.False(response.Headers.Contains("X-RateLimit-Limit"));
        Assert.False(response.Headers.Contains("X-RateLimit-Remaining"));
    }

    [Fact]
    public async Task ShortWindow_RollsOverToAFreshCount()
    {
        await using var proxy = await ProxyInstance.StartAsync(new TestProxyConfig(_vendor.Url)
            .Pool("per-second", 2, "1s", "UTC", ("prod", null))
            .Route("quotes", pool: "per-second")
            .TrustTenantHeader()
            .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix()));

        // Fill one second's window until it rejects, then wait for the reset the proxy announces.
        HttpResponseMessage response;
        var sent = 0;
        do
        {
            response = await proxy.Client.SendAsync(FromEnvironment("prod"));
        }
        while (response.StatusCode == HttpStatusCode.OK && ++sent < 100);

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("1", response.Header("Retry-After"));
        var reset = DateTimeOffset.FromUnixTimeSeconds(long.Parse(response.Header("X-RateLimit-Reset"), System.Globalization.CultureInfo.InvariantCulture));
        var wait = reset - DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(50);
        await Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero);

        using var fresh = await proxy.Client.SendAsync(FromEnvironment("prod"));
        Assert.Equal(HttpStatusCode.OK, fresh.StatusCode);
        Assert.Equal("1", fresh.Header("X-RateLimit-Used"));
    }
}
