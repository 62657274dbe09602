using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using QuotaProxy.Cli;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>
/// The burn-rate forecast through the real proxy on real Redis, under a steady load of about 20 requests a
/// second: the admin status, quotactl's table, the gauges and the response header all say when the tenant
/// runs out, within 40 % of what the load makes true (UsageForecastTests holds the model itself to 1 %).
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class ForecastTests(RedisFixture redis)
{
    private const string AdminKey = "forecast-admin-key";

    [Fact]
    public async Task ASteadyLoad_IsForecastInTheStatus_TheTable_TheGauges_AndTheHeader()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(new TestProxyConfig(vendor.Url)
            .Pool("daily", 10_000_000, "1d", "UTC", ("prod", 1_000), ("test", null))
            .Route("quotes", pool: "daily", cost: 1)
            .ApiKey("prod-key", "prod")
            .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix())
            .Admin(LoopbackPorts.Free(), AdminKey)
            .Set("Quota:Metrics:UsageRefreshInterval", "00:00:01"));

        var watch = Stopwatch.StartNew();
        var sent = 0;
        while (watch.Elapsed < TimeSpan.FromSeconds(6))
        {
            Assert.Equal(HttpStatusCode.OK, await proxy.StatusAsync("prod-key", "/quotes/x"));
            sent++;
            await Task.Delay(45);
        }

        var rate = sent / watch.Elapsed.TotalSeconds;
        // Two usage reads after the load: the forecast has seen all of it.
        await Task.Delay(TimeSpan.FromSeconds(2.2));
        var admin = proxy.Admin!;
        admin.DefaultRequestHeaders.Add("X-Admin-Key", AdminKey);
        var status = await admin.GetFromJsonAsync<JsonElement>("/admin/v1/status?pool=daily");
        var prod = status.GetProperty("pools")[0].GetProperty("tenants").EnumerateArray().Single(t => t.GetProperty("tenant").GetString() == "prod");
        var forecast = prod.GetProperty("forecast");
        var now = DateTimeOffset.UtcNow;
        using var message = new HttpRequestMessage(HttpMethod.Get, "/quotes/x");
        message.Headers.Add("X-Api-Key", "prod-key");
        using var response = await proxy.Client.SendAsync(message);
        var header = response.Headers.GetValues("X-Quota-Forecast").Single();
        var page = await proxy.Client.GetStringAsync("/metrics");
        using var output = new StringWriter();
        using var error = new StringWriter();
        var table = await Quotactl.RunAsync(["status", "--pool", "daily", "--url", proxy.AdminAddress!.ToString(), "--key", AdminKey], output, error);

        // The burn rate: the load's, give or take 40 % (the forecast averages over its reads, idle start included).
        var burnPerHour = forecast.GetProperty("burnPerHour").GetDouble();
        Assert.InRange(burnPerHour, rate * 3600 * 0.6, rate * 3600 * 1.4);
        // When prod runs out: what it has left at that rate.
        var left = 1_000 - sent;
        var expected = left / rate;
        var exhaustsIn = (forecast.GetProperty("exhaustsAt").GetDateTimeOffset() - now).TotalSeconds;
        Assert.InRange(exhaustsIn, expected * 0.6, expected * 1.4);
        var headerSeconds = long.Parse(header.Split(';')[0]["exhausts-in=".Length..], CultureInfo.InvariantCulture);
        Assert.InRange(headerSeconds, expected * 0.6, expected * 1.4);
        Assert.EndsWith("; pool=\"daily\"; node=\"prod\"", header, StringComparison.Ordinal);
        var gauge = page.Split('\n').Single(line => line.StartsWith("quota_proxy_projected_exhaustion_seconds{pool=\"daily\",tenant=\"prod\"}", StringComparison.Ordinal));
        Assert.InRange(double.Parse(gauge.Split(' ')[1], CultureInfo.InvariantCulture), expected * 0.6, expected * 1.4);
        // The pool itself runs out only after midnight at this rate: no forecast, an infinite gauge.
        Assert.Contains(page.Split('\n'), line => line.StartsWith("quota_proxy_projected_exhaustion_seconds{pool=\"daily\",tenant=\"(pool)\"} ", StringComparison.Ordinal) && double.IsPositiveInfinity(double.Parse(line.Split(' ')[1], CultureInfo.InvariantCulture)));
        Assert.Equal(0, table);
        var row = output.ToString().Split('\n').Single(line => line.TrimStart().StartsWith("prod ", StringComparison.Ordinal));
        Assert.Matches(@"\d+m \d+s\s*$", row);
        Assert.Equal(JsonValueKind.Null, status.GetProperty("pools")[0].GetProperty("forecast").GetProperty("exhaustsAt").ValueKind);
    }
}
