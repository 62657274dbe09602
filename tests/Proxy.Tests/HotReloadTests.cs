using System.Net;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>Edits to the watched config file: a valid one is in force within seconds, an invalid one changes nothing.</summary>
public sealed class HotReloadTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("quotaproxy-reload-").FullName;

    private string File => Path.Combine(_directory, "appsettings.json");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static TestProxyConfig Config(VendorServer vendor) => new TestProxyConfig(vendor.Url)
        .Pool("daily", 100, "1d", "UTC", ("e2e", 10))
        .Route("quotes", pool: "daily", cost: 1)
        .ApiKey("e2e-key", "e2e");

    private static async Task<ScrapedMetrics> ReloadedAsync(ProxyInstance proxy, string result, double count) =>
        await proxy.MetricsWhenAsync(m => m.Value("quota_proxy_config_reloads_total", ("result", result)) >= count);

    [Fact]
    public async Task ValidEdit_NewLimitCostKeyTenantAndRoute_AreInForceWithinSeconds_WithoutARestart()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartFromFileAsync(Config(vendor), File);
        var before = await proxy.SendAsync("e2e-key", 2, "/quotes/x");

        Config(vendor)
            .Pool("daily", 100, "1d", "UTC", ("e2e", 3), ("test", null))
            .Route("quotes", pool: "daily", cost: 2)
            .Route("reports", pool: "daily", cost: 5)
            .ApiKey("test-key", "test")
            .WriteJson(File);
        var metrics = await ReloadedAsync(proxy, "applied", 1);
        var e2e = await proxy.SendAsync("e2e-key", 1, "/quotes/x");
        var test = await proxy.SendAsync("test-key", 1, "/reports/x");
        using var testRemaining = await proxy.GetAsync("test-key", "/quotes/x");

        Assert.Equal(2, before.Admitted);
        Assert.Equal(1, metrics.Value("quota_proxy_config_reloads_total", ("result", "applied")));
        // e2e has used 2; its new limit is 3 and a quote now costs 2.
        Assert.Equal(HttpStatusCode.TooManyRequests, e2e.Statuses.Single());
        Assert.Equal(HttpStatusCode.OK, test.Statuses.Single());
        Assert.Equal("91", testRemaining.Headers.GetValues("X-RateLimit-Remaining").Single()); // 100 − e2e's 2 − 5 − 2: test has no limit of its own
        Assert.DoesNotContain(proxy.Logs.Lines, line => line.Contains("[1211]", StringComparison.Ordinal));
    }

    [Fact]
    public async Task InvalidEdit_IsRefusedWithEveryErrorLoggedAndCounted_AndTheLastGoodConfigStaysInForce()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartFromFileAsync(Config(vendor), File);

        new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("e2e", 500))
            .Route("quotes", pool: "dialy", cost: 1)
            .Route("reports", pool: "daily", cost: 5)
            .ApiKey("e2e-key", "e2e")
            .WriteJson(File);
        var metrics = await ReloadedAsync(proxy, "rejected", 1);
        var quotes = await proxy.SendAsync("e2e-key", 11, "/quotes/x");
        using var reports = await proxy.GetAsync("e2e-key", "/reports/x");

        Assert.Equal(1, metrics.Value("quota_proxy_config_reloads_total", ("result", "rejected")));
        Assert.Equal(0, metrics.Value("quota_proxy_config_reloads_total", ("result", "applied")));
        var refused = Assert.Single(proxy.Logs.Lines, line => line.Contains("[1211]", StringComparison.Ordinal));
        Assert.Contains("2 error(s)", refused);
        Assert.Contains("Quota:Pools:daily:Tenants:e2e:Limit must be ≤ the pool's Limit (100), got 500.", refused);
        Assert.Contains("ReverseProxy:Routes:quotes:Metadata:Quota.Pool", refused);
        // Still the old config: e2e's limit of 10 at cost 1, and no reports route.
        Assert.Equal(10, quotes.Admitted);
        Assert.Equal(HttpStatusCode.NotFound, reports.StatusCode);
    }
}
