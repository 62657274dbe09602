using System.Text.Json;
using System.Text.RegularExpressions;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>
/// The Grafana dashboard (config/grafana, and the chart's copy) queries only metrics the proxy exports: each
/// name in a panel's expression is one the proxy serves on /metrics after some traffic, or one documented in
/// docs/observability.md (a family that appears only when its event has happened).
/// </summary>
public sealed partial class GrafanaDashboardTests
{
    private static readonly string Dashboard = Path.Combine(Repository.Root, "config", "grafana", "quota-proxy-dashboard.json");

    [Fact]
    public void TheChartsDashboard_IsTheRepositorysDashboard() =>
        Assert.Equal(File.ReadAllText(Dashboard), File.ReadAllText(Path.Combine(Repository.Root, "charts", "quota-proxy", "files", "quota-proxy-dashboard.json")));

    [Fact]
    public async Task EveryQuery_NamesOnlyMetricsTheProxyExports_AndEveryPanelHasOne()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(new TestProxyConfig(vendor.Url)
            .Pool("daily", 2, "1d", "UTC", ("prod", null))
            .Route("quotes", pool: "daily", cost: 1)
            .ApiKey("prod-key", "prod"));
        await proxy.SendAsync("prod-key", 3, "/quotes/x");
        using var scrape = await proxy.Client.GetAsync("/metrics");
        var exported = FamilyName().Matches(await scrape.Content.ReadAsStringAsync()).Select(m => m.Groups[1].Value).ToHashSet();
        var documented = DocumentedName().Matches(await File.ReadAllTextAsync(Path.Combine(Repository.Root, "docs", "observability.md"))).Select(m => m.Groups[1].Value).ToHashSet();

        var panels = JsonDocument.Parse(await File.ReadAllTextAsync(Dashboard)).RootElement.GetProperty("panels").EnumerateArray().ToList();
        var queried = new List<string>();
        foreach (var panel in panels)
        {
            var expressions = panel.GetProperty("targets").EnumerateArray().Select(t => t.GetProperty("expr").GetString()!).ToList();
            Assert.True(expressions.Count > 0 && expressions.All(e => MetricName().IsMatch(e)), $"panel '{panel.GetProperty("title").GetString()}' queries no proxy metric");
            queried.AddRange(expressions.SelectMany(e => MetricName().Matches(e).Select(m => Suffix().Replace(m.Value, ""))));
        }

        Assert.True(exported.Count > 10, "the scrape has the proxy's families");
        var unknown = queried.Distinct().Where(name => !exported.Contains(name) && !documented.Contains(name)).ToList();
        Assert.True(unknown.Count == 0, "queried but not exported: " + string.Join(", ", unknown));
        // The dashboard shows what an operator watches: usage against limits, the forecast, decisions, latency, store health.
        Assert.Contains("quota_proxy_tenant_credits_limit", queried);
        Assert.Contains("quota_proxy_requests_total", queried);
        Assert.Contains("quota_proxy_store_duration_seconds", queried);
        Assert.Contains("quota_proxy_store_breaker_open", queried);
    }

    [GeneratedRegex(@"(?m)^# TYPE (quota_proxy_\w+) ")]
    private static partial Regex FamilyName();

    [GeneratedRegex(@"\| `(quota_proxy_\w+)` \|")]
    private static partial Regex DocumentedName();

    [GeneratedRegex(@"\bquota_proxy_\w+")]
    private static partial Regex MetricName();

    [GeneratedRegex(@"_(bucket|sum|count)$")]
    private static partial Regex Suffix();
}
