using System.Net;
using System.Text.Json;
using QuotaProxy.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Settings;

namespace QuotaProxy.Tests;

/// <summary>
/// What an operator of Envoy or Kong gets out of the box: request, upstream and decision histograms on
/// <c>/metrics</c> and a JSON access log (traces: <see cref="TracingTests"/>).
/// </summary>
public sealed class TelemetryTests
{
    internal const string ProdKey = "prod-key-5b1d0c";
    internal const string TestKey = "test-key-93ae41";

    internal static TestProxyConfig Config(VendorServer vendor) => new TestProxyConfig(vendor.Url)
        .Pool("daily", 100, "1d", "UTC", ("prod", 2), ("test", null))
        .Route("quotes", pool: "daily", cost: 1)
        .Route("free")
        .ApiKey(ProdKey, "prod")
        .ApiKey(TestKey, "test")
        // A route to a vendor that is not there: the forwarder gets no answer.
        .Set("ReverseProxy:Clusters:gone:Destinations:d1:Address", $"http://127.0.0.1:{LoopbackPorts.Free()}")
        .Set("ReverseProxy:Routes:gone:ClusterId", "gone")
        .Set("ReverseProxy:Routes:gone:Match:Path", "/gone/{**rest}")
        .Set("ReverseProxy:Routes:gone:Metadata:Quota.Pool", "daily");

    [Fact]
    public async Task RequestUpstreamAndDecisionHistograms_ByRouteAndStatus_AndTheProcess_AreOnTheDefaultPage_AndPromtoolAcceptsIt()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));
        Assert.Equal(
            [HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests, HttpStatusCode.Unauthorized, HttpStatusCode.OK, HttpStatusCode.BadGateway],
            [
                await proxy.StatusAsync(ProdKey, "/quotes/a"),
                await proxy.StatusAsync(ProdKey, "/quotes/a"),
                await proxy.StatusAsync(ProdKey, "/quotes/a"),
                await proxy.StatusAsync(null, "/quotes/a"),
                await proxy.StatusAsync(null, "/free/a"),
                await proxy.StatusAsync(TestKey, "/gone/a"),
            ]);

        var page = await (await proxy.Client.GetAsync("/metrics")).Content.ReadAsStringAsync();
        double Value(string series) =>
            page.Split('\n').Where(line => line.StartsWith(series + " ", StringComparison.Ordinal)).Select(line => double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture)).SingleOrDefault(-1);

        // End to end, by route and the status the caller got: unmetered routes too.
        Assert.Equal(2, Value("quota_proxy_request_duration_seconds_count{route=\"quotes\",status=\"200\"}"));
        Assert.Equal(1, Value("quota_proxy_request_duration_seconds_count{route=\"quotes\",status=\"429\"}"));
        Assert.Equal(1, Value("quota_proxy_request_duration_seconds_count{route=\"quotes\",status=\"401\"}"));
        Assert.Equal(1, Value("quota_proxy_request_duration_seconds_count{route=\"free\",status=\"200\"}"));
        Assert.Equal(1, Value("quota_proxy_request_duration_seconds_count{route=\"gone\",status=\"502\"}"));
        // The vendor's part, by its status: only forwarded requests; the one it never answered as status 0.
        Assert.Equal(2, Value("quota_proxy_upstream_duration_seconds_count{route=\"quotes\",status=\"200\"}"));
        Assert.Equal(1, Value("quota_proxy_upstream_duration_seconds_count{route=\"free\",status=\"200\"}"));
        Assert.Equal(1, Value("quota_proxy_upstream_duration_seconds_count{route=\"gone\",status=\"0\"}"));
        Assert.DoesNotContain("quota_proxy_upstream_duration_seconds_count{route=\"quotes\",status=\"429\"}", page, StringComparison.Ordinal);
        // The quota step's time: every metered request the store decided (three admitted or rejected on quotes, one on gone).
        Assert.Equal(3, Value("quota_proxy_decision_duration_seconds_count{route=\"quotes\"}"));
        Assert.Equal(1, Value("quota_proxy_decision_duration_seconds_count{route=\"gone\"}"));
        Assert.True(Value("quota_proxy_decision_duration_seconds_sum{route=\"quotes\"}") > 0);
        Assert.Equal(3, vendor.Calls.Count);
        // The process, on the default page too.
        Assert.True(Value("process_cpu_seconds_total") > 0);
        Assert.True(Value("process_working_set_bytes") > 0);
        Assert.True(Value("dotnet_collection_count_total{generation=\"0\"}") >= 0);

        var (exitCode, output) = await Promtool.RunAsync(page, "check", "metrics");
        Assert.True(exitCode == 0, output);
    }

    [Fact]
    public async Task AccessLog_OneJsonLinePerRequest_WithRouteTenantStatusCreditsAndTimes_NeverAKeyOrQuery()
    {
        using var vendor = new VendorServer();
        var file = Path.Combine(Path.GetTempPath(), $"quota-proxy-access-{Guid.NewGuid():N}.log");
        try
        {
            await using (var proxy = await ProxyInstance.StartAsync(Config(vendor).Set("Quota:AccessLog:Enabled", "true").Set("Quota:AccessLog:Path", file)))
            {
                using var withId = new HttpRequestMessage(HttpMethod.Get, "/quotes/a?token=secret-in-query");
                withId.Headers.Add("X-Api-Key", ProdKey);
                withId.Headers.Add("X-Request-Id", "req-1");
                Assert.Equal(HttpStatusCode.OK, (await proxy.Client.SendAsync(withId)).StatusCode);
                Assert.Equal(HttpStatusCode.OK, await proxy.StatusAsync(ProdKey, "/quotes/b"));
                Assert.Equal(HttpStatusCode.TooManyRequests, await proxy.StatusAsync(ProdKey, "/quotes/c"));
                Assert.Equal(HttpStatusCode.Unauthorized, await proxy.StatusAsync("not-a-key-7f3e", "/quotes/d"));
                Assert.Equal(HttpStatusCode.OK, await proxy.StatusAsync(null, "/free/e"));
                Assert.Equal(HttpStatusCode.BadGateway, await proxy.StatusAsync(TestKey, "/gone/f"));
            }

            // The proxy has stopped: everything queued is written.
            var text = await File.ReadAllTextAsync(file);
            var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement).ToList();
            Assert.Equal(["/quotes/a", "/quotes/b", "/quotes/c", "/quotes/d", "/free/e", "/gone/f"], lines.Select(line => line.GetProperty("path").GetString()));
            string? Text(JsonElement line, string name) => line.TryGetProperty(name, out var value) ? value.ToString() : null;
            Assert.Equal(
                [
                    ("req-1", "quotes", "200", "prod", "admitted", "1", "200"),
                    (null, "quotes", "200", "prod", "admitted", "1", "200"),
                    (null, "quotes", "429", "prod", "rejected_quota", "0", null),
                    (null, "quotes", "401", null, "unidentified", null, null),
                    (null, "free", "200", null, null, null, "200"),
                    (null, "gone", "502", "test", "admitted", "1", "0"),
                ],
                lines.Select(line => (
                    Text(line, "requestId") == "req-1" ? "req-1" : null,
                    Text(line, "route"), Text(line, "status"), Text(line, "tenant"), Text(line, "outcome"), Text(line, "credits"), Text(line, "upstreamStatus"))));
            Assert.All(lines, line => Assert.True(line.GetProperty("durationMs").GetDouble() > 0));
            Assert.All(lines.Where(line => Text(line, "outcome") is "admitted" or "rejected_quota"), line => Assert.True(line.GetProperty("decisionMs").GetDouble() > 0));
            Assert.All(lines.Where(line => Text(line, "upstreamStatus") is not null), line => Assert.True(line.GetProperty("upstreamMs").GetDouble() > 0));
            Assert.All(lines, line => Assert.True(DateTimeOffset.UtcNow - line.GetProperty("time").GetDateTimeOffset() < TimeSpan.FromMinutes(5)));
            foreach (var secret in new[] { ProdKey, TestKey, "not-a-key-7f3e", "secret-in-query", Enforcement.Identity.ApiKeyHash.Compute(ProdKey) })
            {
                Assert.DoesNotContain(secret, text, StringComparison.OrdinalIgnoreCase);
            }
        }
        finally
        {
            File.Delete(file);
        }
    }
}
