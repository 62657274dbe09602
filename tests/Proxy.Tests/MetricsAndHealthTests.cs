using System.Net;
using System.Text.Json;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace QuotaProxy.Tests;

/// <summary><c>/metrics</c> after a known sequence of requests, checked value by value and by promtool; <c>/healthz</c> and <c>/readyz</c>.</summary>
public sealed class MetricsAndHealthTests
{
    private static TestProxyConfig Config(VendorServer vendor) => new TestProxyConfig(vendor.Url)
        .Pool("daily", 100, "1d", "UTC", ("prod", 3), ("test", null), ("shadowy", 1), ("batch", null))
        .Pool("vendor", 100, "1d", "UTC", ("outsider", null))
        .Route("quotes", pool: "daily", cost: 1)
        .Route("limited", pool: "vendor", cost: 2)
        .ApiKey("prod-key", "prod")
        .ApiKey("test-key", "test")
        .ApiKey("shadowy-key", "shadowy")
        .ApiKey("batch-key", "batch")
        .ApiKey("outsider-key", "outsider")
        .Set("Quota:Pools:daily:Tenants:test:Rate", "1/m")
        .Set("Quota:Pools:daily:Tenants:shadowy:Mode", "Shadow")
        .Set("Quota:Pools:daily:Tenants:batch:MaxInFlight", "1");

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task PlatformMetrics_RequestDurationByRouteAndStatus_UpstreamDuration_AndTheRuntime_AreOnTheSamePage_UnlessSwitchedOff(bool platform)
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor).Set("Quota:Metrics:Platform", platform ? "true" : "false"));
        for (var i = 0; i < 4; i++)
        {
            await proxy.StatusAsync("prod-key", "/quotes/x"); // 3 admitted, then 429
        }

        var page = await (await proxy.Client.GetAsync("/metrics")).Content.ReadAsStringAsync();
        var lines = page.Split('\n');
        bool Has(string prefix, params string[] labels) => lines.Any(l => l.StartsWith(prefix, StringComparison.Ordinal) && labels.All(label => l.Contains(label, StringComparison.Ordinal)));

        var expected = new[]
        {
            Has("microsoft_aspnetcore_hosting_http_server_request_duration_count{", "http_route=\"/quotes/{**rest}\"", "http_response_status_code=\"200\""),
            Has("microsoft_aspnetcore_hosting_http_server_request_duration_count{", "http_route=\"/quotes/{**rest}\"", "http_response_status_code=\"429\""),
            Has("system_net_http_http_client_request_duration_count{", "http_response_status_code=\"200\""),
            Has("system_runtime_dotnet_gc_collections"),
        };
        Assert.Equal([platform, platform, platform, platform], expected);
        // The quota metrics are there either way.
        Assert.True(Has("quota_proxy_requests_total{"));
    }

    [Fact]
    public async Task AfterAKnownSequence_EveryOutcomeAndCreditIsCounted_AndPromtoolAcceptsThePage()
    {
        using var vendor = new VendorServer();
        vendor.Server.Reset();
        vendor.Server.Given(Request.Create().UsingAnyMethod()).AtPriority(100).RespondWith(Response.Create().WithStatusCode(200));
        vendor.Server.Given(Request.Create().WithPath("/busy")).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(429).WithHeader("Retry-After", "60"));
        vendor.Server.Given(Request.Create().WithPath("/slow")).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(200).WithDelay(TimeSpan.FromSeconds(1)));
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 4; i++)
        {
            statuses.Add(await proxy.StatusAsync("prod-key", "/quotes/x")); // 200 ×3 (prod's limit), then rejected_quota
        }

        statuses.Add(await proxy.StatusAsync("test-key", "/quotes/x")); // 200
        statuses.Add(await proxy.StatusAsync("test-key", "/quotes/x")); // rejected_rate (1/m)
        statuses.Add(await proxy.StatusAsync("shadowy-key", "/quotes/x")); // 200
        statuses.Add(await proxy.StatusAsync("shadowy-key", "/quotes/x")); // 200, but shadow_rejected (over its limit of 1)
        statuses.Add(await proxy.StatusAsync(null, "/quotes/x")); // unidentified
        statuses.Add(await proxy.StatusAsync("outsider-key", "/quotes/x")); // forbidden: not a tenant of daily
        statuses.Add(await proxy.StatusAsync("test-key", "/quotes/x", ("Idempotency-Key", "has space"))); // invalid_request
        statuses.Add(await proxy.StatusAsync("outsider-key", "/limited/busy")); // 429 from the vendor: admitted, the pool closes
        statuses.Add(await proxy.StatusAsync("outsider-key", "/limited/other")); // vendor_limited
        var slow = proxy.StatusAsync("batch-key", "/quotes/slow"); // admitted, holds batch's one slot for a second
        await Task.Delay(300);
        statuses.Add(await proxy.StatusAsync("batch-key", "/quotes/x")); // rejected_concurrency
        statuses.Add(await slow);

        Assert.Equal(
            [
                HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests,
                HttpStatusCode.OK, HttpStatusCode.TooManyRequests,
                HttpStatusCode.OK, HttpStatusCode.OK,
                HttpStatusCode.Unauthorized, HttpStatusCode.Forbidden, HttpStatusCode.BadRequest,
                HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests,
                HttpStatusCode.TooManyRequests, HttpStatusCode.OK,
            ],
            statuses);
        var metrics = await proxy.MetricsAsync();
        double Requests(string route, string tenant, string outcome) =>
            metrics.Value("quota_proxy_requests_total", ("route", route), ("tenant", tenant), ("outcome", outcome));
        Assert.Equal(3, Requests("quotes", "prod", "admitted"));
        Assert.Equal(1, Requests("quotes", "prod", "rejected_quota"));
        Assert.Equal(1, Requests("quotes", "test", "admitted"));
        Assert.Equal(1, Requests("quotes", "test", "rejected_rate"));
        Assert.Equal(1, Requests("quotes", "shadowy", "admitted"));
        Assert.Equal(1, Requests("quotes", "shadowy", "shadow_rejected"));
        Assert.Equal(1, Requests("quotes", "", "unidentified"));
        Assert.Equal(1, Requests("quotes", "", "forbidden"));
        Assert.Equal(1, Requests("quotes", "test", "invalid_request"));
        Assert.Equal(1, Requests("limited", "outsider", "admitted"));
        Assert.Equal(1, Requests("limited", "outsider", "vendor_limited"));
        Assert.Equal(1, Requests("quotes", "batch", "admitted"));
        Assert.Equal(1, Requests("quotes", "batch", "rejected_concurrency"));
        Assert.Equal(15, metrics.Value("quota_proxy_requests_total"));
        Assert.Equal(["daily", "vendor"], metrics.LabelValues("quota_proxy_requests_total", "pool").Order());

        Assert.Equal(3, metrics.Value("quota_proxy_credits_debited_total", ("pool", "daily"), ("tenant", "prod")));
        Assert.Equal(2, metrics.Value("quota_proxy_credits_debited_total", ("pool", "vendor"), ("tenant", "outsider"), ("route", "limited")));
        Assert.Equal(9, metrics.Value("quota_proxy_credits_debited_total")); // prod 3, test 1, shadowy 2, outsider 2, batch 1
        Assert.Equal(3, metrics.Value("quota_proxy_tenant_credits_used", ("pool", "daily"), ("tenant", "prod")));
        Assert.Equal(3, metrics.Value("quota_proxy_tenant_credits_limit", ("pool", "daily"), ("tenant", "prod")));
        Assert.Equal(7, metrics.Value("quota_proxy_pool_credits_used", ("pool", "daily"))); // prod 3, test 1, shadowy 2, batch 1
        Assert.Equal(100, metrics.Value("quota_proxy_pool_credits_limit", ("pool", "daily")));
        Assert.Equal(1, metrics.Value("quota_proxy_vendor_closures_total", ("pool", "vendor")));
        // Every decision was timed (12 reached the store), and one lease was released; nothing failed.
        Assert.Equal(12, metrics.Value("quota_proxy_store_duration_seconds_count", ("operation", "debit")));
        Assert.Equal(1, metrics.Value("quota_proxy_store_duration_seconds_count", ("operation", "release")));
        Assert.Equal(1, metrics.Value("quota_proxy_store_duration_seconds_count", ("operation", "close")));
        Assert.Equal(0, metrics.Value("quota_proxy_store_errors_total"));
        // Labels are configured names only: no API key and no key hash anywhere on the page.
        Assert.DoesNotContain("prod-key", metrics.Text);

        var (exitCode, output) = await Promtool.RunAsync(metrics.Text, "check", "metrics");
        Assert.True(exitCode == 0, output);
    }

    [Fact]
    public async Task StoreUnreachable_RequestsAreCountedAsStoreUnavailable_TheDebitsAsStoreErrors_AndReadyzSaysDegradedNotUnready()
    {
        using var vendor = new VendorServer();
        var config = Config(vendor).Redis($"127.0.0.1:{LoopbackPorts.Free()}", RedisFixture.NewKeyPrefix(), timeout: TimeSpan.FromMilliseconds(200));
        await using var proxy = await ProxyInstance.StartAsync(config);

        var first = await proxy.StatusAsync("prod-key", "/quotes/x");
        var second = await proxy.StatusAsync("prod-key", "/quotes/x");
        using var healthz = await proxy.Client.GetAsync("/healthz");
        using var readyz = await proxy.Client.GetAsync("/readyz");

        Assert.Equal((HttpStatusCode.ServiceUnavailable, HttpStatusCode.ServiceUnavailable), (first, second));
        var metrics = await proxy.MetricsAsync();
        Assert.Equal(2, metrics.Value("quota_proxy_requests_total", ("route", "quotes"), ("tenant", "prod"), ("outcome", "store_unavailable")));
        Assert.Equal(2, metrics.Value("quota_proxy_store_errors_total", ("operation", "debit")));
        Assert.Equal(HttpStatusCode.OK, healthz.StatusCode);
        // Still ready: unmetered routes serve, metered ones get the outage policy; the detail says why.
        Assert.Equal(HttpStatusCode.OK, readyz.StatusCode);
        var body = JsonDocument.Parse(await readyz.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("Degraded", body.GetProperty("status").GetString());
        var store = body.GetProperty("checks").GetProperty("store");
        Assert.Equal("Degraded", store.GetProperty("status").GetString());
        Assert.StartsWith("redis unreachable", store.GetProperty("description").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Readyz_WithTheInProcessStoreAndNoLedger_IsReady_AndNamesItsOneCheck()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));

        using var healthz = await proxy.Client.GetAsync("/healthz");
        using var readyz = await proxy.Client.GetAsync("/readyz");

        Assert.Equal(HttpStatusCode.OK, healthz.StatusCode);
        Assert.Equal(HttpStatusCode.OK, readyz.StatusCode);
        var checks = JsonDocument.Parse(await readyz.Content.ReadAsStringAsync()).RootElement.GetProperty("checks");
        Assert.Equal(["store"], checks.EnumerateObject().Select(c => c.Name));
        Assert.Equal("Healthy", checks.GetProperty("store").GetProperty("status").GetString());
    }

    [Fact]
    public void EveryOutcome_HasALabel_AndTheLabelsAreDistinct()
    {
        Assert.Equal(Enum.GetValues<RequestOutcome>().Length, QuotaMetrics.OutcomeLabels.Values.Distinct().Count());
    }
}
