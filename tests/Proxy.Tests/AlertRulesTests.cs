using System.Text.RegularExpressions;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary><c>config/prometheus/quota-proxy.rules.yml</c>: valid, unit-tested alert by alert, and written against metrics the proxy exports.</summary>
public sealed partial class AlertRulesTests
{
    private static readonly string RulesDirectory = Path.Combine(Repository.Root, "config", "prometheus");
    private static readonly string Rules = Path.Combine(RulesDirectory, "quota-proxy.rules.yml");
    private static readonly string RuleTests = Path.Combine(RulesDirectory, "quota-proxy.rules.test.yml");

    [Fact]
    public async Task Rules_PassPromtoolCheckRules()
    {
        var (exitCode, output) = await Promtool.RunAsync(null, "check", "rules", Rules);

        Assert.True(exitCode == 0, output);
        Assert.Contains("SUCCESS: 9 rules found", output);
    }

    [Fact]
    public async Task Rules_PassTheirUnitTests_AndEveryAlertHasOne()
    {
        var (exitCode, output) = await Promtool.RunAsync(null, "test", "rules", RuleTests);

        Assert.True(exitCode == 0, output);
        var alerts = AlertName().Matches(await File.ReadAllTextAsync(Rules)).Select(m => m.Groups[1].Value).ToHashSet();
        var tested = TestedAlertName().Matches(await File.ReadAllTextAsync(RuleTests)).Select(m => m.Groups[1].Value).ToHashSet();
        Assert.Equal(9, alerts.Count);
        Assert.Equal(alerts.Order(), tested.Order());
    }

    [Fact]
    public async Task Rules_UseOnlyMetricsTheProxyExports()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(new TestProxyConfig(vendor.Url).Pool("daily", 10, tenants: ("prod", null)));
        var page = (await proxy.MetricsAsync()).Text;

        var used = MetricName().Matches(await File.ReadAllTextAsync(Rules)).Select(m => m.Value).ToHashSet();

        Assert.NotEmpty(used);
        Assert.All(used, metric => Assert.Contains($"# TYPE {metric} ", page));
    }

    [GeneratedRegex(@"- alert: (\w+)")]
    private static partial Regex AlertName();

    [GeneratedRegex(@"alertname: (\w+)")]
    private static partial Regex TestedAlertName();

    [GeneratedRegex(@"quota_proxy_[a-z_]+")]
    private static partial Regex MetricName();
}
