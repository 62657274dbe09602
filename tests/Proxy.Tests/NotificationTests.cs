using System.Globalization;
using System.Net;
using System.Text.Json;
using QuotaProxy.Enforcement.Notifications;
using QuotaProxy.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Settings;

namespace QuotaProxy.Tests;

/// <summary>
/// Threshold notifications through two real proxies on one real Redis, to two local receivers: one that takes
/// everything, one that fails its first two deliveries. Each threshold of each node is notified exactly once
/// across both replicas, retried until delivered with the same id, and signed.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class NotificationTests(RedisFixture redis)
{
    private const string SecretVariable = "QUOTAPROXY_TEST_WEBHOOK_SECRET";
    private const string Secret = "webhook-secret-8d2f";

    [Fact]
    public async Task EachThresholdOfEachNode_IsNotifiedOnceAcrossReplicas_RetriedUntilDelivered_AndSigned()
    {
        Environment.SetEnvironmentVariable(SecretVariable, Secret);
        using var vendor = new VendorServer();
        using var steady = WireMockServer.Start(new WireMockServerSettings { Urls = [$"http://127.0.0.1:{LoopbackPorts.Free()}"] });
        steady.Given(Request.Create().WithPath("/hook").UsingPost()).RespondWith(Response.Create().WithStatusCode(204));
        using var flaky = WireMockServer.Start(new WireMockServerSettings { Urls = [$"http://127.0.0.1:{LoopbackPorts.Free()}"] });
        var calls = 0;
        flaky.Given(Request.Create().WithPath("/hook").UsingPost())
            .RespondWith(Response.Create().WithCallback(_ => new WireMock.ResponseMessage { StatusCode = Interlocked.Increment(ref calls) <= 2 ? 503 : 200 }));
        var prefix = RedisFixture.NewKeyPrefix();
        TestProxyConfig Config() => new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("test", 10), ("prod", null))
            .Route("quotes", pool: "daily", cost: 1)
            .ApiKey("test-key", "test")
            .Redis(redis.ConnectionString, prefix)
            .Set("Quota:Pools:daily:Notify:0", "10")
            .Set("Quota:Pools:daily:Tenants:test:Notify:0", "50")
            .Set("Quota:Pools:daily:Tenants:test:Notify:1", "100")
            .Set("Quota:Metrics:UsageRefreshInterval", "00:00:01")
            .Set("Quota:Notifications:FirstRetryDelay", "00:00:00.050")
            .Set("Quota:Notifications:Webhooks:0:Name", "ops")
            .Set("Quota:Notifications:Webhooks:0:Url", $"{steady.Urls[0]}/hook")
            .Set("Quota:Notifications:Webhooks:0:SecretEnvironmentVariable", SecretVariable)
            .Set("Quota:Notifications:Webhooks:1:Name", "pager")
            .Set("Quota:Notifications:Webhooks:1:Url", $"{flaky.Urls[0]}/hook")
            .Set("Quota:Notifications:Webhooks:1:SecretEnvironmentVariable", SecretVariable);
        await using var a = await ProxyInstance.StartAsync(Config());
        await using var b = await ProxyInstance.StartAsync(Config());

        // test spends its 10 through both replicas: 50 % and 100 % of its limit, and 10 % of the pool's.
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(HttpStatusCode.OK, await (i % 2 == 0 ? a : b).StatusAsync("test-key", "/quotes/x"));
        }

        await Poll.UntilAsync(
            "three notifications delivered to each receiver",
            () => Task.FromResult((steady.LogEntries.Count(), flaky.LogEntries.Count(e => e.ResponseMessage?.StatusCode is 200))),
            seen => seen == (3, 3),
            TimeSpan.FromSeconds(20));
        // A few more usage reads on both replicas: nothing is sent again.
        await Task.Delay(TimeSpan.FromSeconds(3));

        var delivered = steady.LogEntries.Select(e => JsonDocument.Parse(e.RequestMessage!.Body!).RootElement).ToList();
        Assert.Equal(
            ["daily/(pool)/10", "daily/test/100", "daily/test/50"],
            delivered.Select(n => n.GetProperty("id").GetString()!.Split('@')[0]).Order(StringComparer.Ordinal));
        var fifty = delivered.Single(n => n.GetProperty("threshold").GetInt32() == 50);
        Assert.Equal(("quota.threshold", "daily", "test", 10L), (fifty.GetProperty("type").GetString(), fifty.GetProperty("pool").GetString(), fifty.GetProperty("node").GetString(), fifty.GetProperty("limit").GetInt64()));
        Assert.InRange(fifty.GetProperty("used").GetInt64(), 5, 10);
        Assert.Equal(JsonValueKind.Null, delivered.Single(n => n.GetProperty("threshold").GetInt32() == 10).GetProperty("node").ValueKind);

        // The flaky receiver: two refusals, then each notification once; every retry is the same id and body.
        var attempts = flaky.LogEntries.ToList();
        Assert.Equal(5, attempts.Count);
        Assert.Equal(2, attempts.Count(e => e.ResponseMessage!.StatusCode is 503));
        foreach (var group in attempts.GroupBy(e => e.RequestMessage!.Headers!["Idempotency-Key"].Single()))
        {
            Assert.Single(group, e => e.ResponseMessage!.StatusCode is 200);
            Assert.Single(group.Select(e => e.RequestMessage!.Body).Distinct());
            Assert.Equal(group.Key, JsonDocument.Parse(group.First().RequestMessage!.Body!).RootElement.GetProperty("id").GetString());
        }

        // Signed: HMAC-SHA256 over "t.body" with the webhook's key.
        foreach (var entry in steady.LogEntries.Concat(attempts))
        {
            var signature = entry.RequestMessage!.Headers!["X-QuotaProxy-Signature"].Single();
            var t = signature.Split(',')[0]["t=".Length..];
            Assert.Equal($"t={t},v1={WebhookSender.Sign(Secret, t, entry.RequestMessage.Body!)}", signature);
            Assert.InRange(long.Parse(t, CultureInfo.InvariantCulture), DateTimeOffset.UtcNow.AddMinutes(-2).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.ToUnixTimeSeconds());
            Assert.Equal("quota.threshold", entry.RequestMessage.Headers["X-QuotaProxy-Event"].Single());
        }

        Assert.NotEqual(
            WebhookSender.Sign("another-key", "1", steady.LogEntries.First().RequestMessage!.Body!),
            WebhookSender.Sign(Secret, "1", steady.LogEntries.First().RequestMessage!.Body!));
        // Counted where they were sent: three deliveries and two failed attempts to pager, over both replicas.
        double Count(ProxyInstance proxy, string outcome) =>
            proxy.Client.GetStringAsync("/metrics").Result.Split('\n')
                .Where(line => line.StartsWith($"quota_proxy_notifications_total{{webhook=\"pager\",outcome=\"{outcome}\"}} ", StringComparison.Ordinal))
                .Sum(line => double.Parse(line.Split(' ')[1], CultureInfo.InvariantCulture));
        Assert.Equal((3, 2), (Count(a, "delivered") + Count(b, "delivered"), Count(a, "attempt_failed") + Count(b, "attempt_failed")));
    }
}
