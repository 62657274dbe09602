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
        Assert.Equal("91", testRemaining.Header("X-RateLimit-Remaining")); // 100 − e2e's 2 − 5 − 2: test has no limit of its own
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

    [Fact]
    public async Task EditRenamingTheIdentityHeaders_TheNamesInForceAreStrippedFromWhatTheVendorReceives()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartFromFileAsync(Config(vendor).TrustTenantHeader("127.0.0.0/8"), File);

        Config(vendor)
            .TrustTenantHeader("127.0.0.0/8")
            .Set("Quota:Identity:ApiKeyHeader", "X-Team-Key")
            .Set("Quota:Identity:TenantHeader", "X-Team")
            .WriteJson(File);
        await ReloadedAsync(proxy, "applied", 1);
        using var byKey = new HttpRequestMessage(HttpMethod.Get, "/quotes/by-key");
        byKey.Headers.Add("X-Team-Key", "e2e-key");
        using var keyed = await proxy.Client.SendAsync(byKey);
        using var byTenant = new HttpRequestMessage(HttpMethod.Get, "/quotes/by-tenant");
        byTenant.Headers.Add("X-Team", "e2e");
        using var named = await proxy.Client.SendAsync(byTenant);

        Assert.Equal(HttpStatusCode.OK, keyed.StatusCode);
        Assert.Equal(HttpStatusCode.OK, named.StatusCode);
        Assert.Equal(2, vendor.Calls.Count);
        Assert.All(vendor.Calls, call =>
        {
            Assert.Empty(VendorServer.HeaderValues(call, "X-Team-Key"));
            Assert.Empty(VendorServer.HeaderValues(call, "X-Team"));
        });
    }

    [Fact]
    public async Task EditThatIsNotJson_IsRefusedLoggedAndCounted_TheLastGoodConfigStays_AndTheNextGoodEditApplies()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartFromFileAsync(Config(vendor), File);

        var broken = File + ".tmp";
        await System.IO.File.WriteAllTextAsync(broken, "{ \"Quota\": { \"Pools\": ");
        System.IO.File.Move(broken, File, overwrite: true);
        var refused = await ReloadedAsync(proxy, "rejected", 1);
        var during = await proxy.SendAsync("e2e-key", 11, "/quotes/x");
        Config(vendor).Route("reports", pool: "daily", cost: 1).WriteJson(File);
        var applied = await ReloadedAsync(proxy, "applied", 1);
        using var reports = await proxy.GetAsync("e2e-key", "/reports/x");

        Assert.Equal(1, refused.Value("quota_proxy_config_reloads_total", ("result", "rejected")));
        Assert.Equal(0, refused.Value("quota_proxy_config_reloads_total", ("result", "applied")));
        var line = Assert.Single(proxy.Logs.Lines, line => line.Contains("[1211]", StringComparison.Ordinal));
        Assert.Contains($"{File} is not valid JSON", line);
        // Still the old config: e2e's limit of 10, every key and route of it in force.
        Assert.Equal(10, during.Admitted);
        Assert.Equal(1, applied.Value("quota_proxy_config_reloads_total", ("result", "applied")));
        Assert.Equal(HttpStatusCode.TooManyRequests, reports.StatusCode);
    }

    [Fact]
    public async Task EditWithARouteYarpRefuses_IsRefusedWithYarpsReason_AndNeverReportedApplied()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartFromFileAsync(Config(vendor), File);

        Config(vendor)
            .Pool("daily", 100, "1d", "UTC", ("e2e", 20))
            .Set("ReverseProxy:Routes:broken:ClusterId", "vendor")
            .Set("ReverseProxy:Routes:broken:Match:Path", "/broken/{")
            .WriteJson(File);
        var metrics = await ReloadedAsync(proxy, "rejected", 1);
        var quotes = await proxy.SendAsync("e2e-key", 11, "/quotes/x");

        Assert.Equal(0, metrics.Value("quota_proxy_config_reloads_total", ("result", "applied")));
        var refused = Assert.Single(proxy.Logs.Lines, line => line.Contains("[1211]", StringComparison.Ordinal));
        Assert.Contains("ReverseProxy:Routes:broken: Invalid path '/broken/{' for route 'broken'.", refused);
        // The valid half of the edit (e2e's limit of 20) is not in force either: an edit is taken whole or not at all.
        Assert.Equal(10, quotes.Admitted);
    }
}
