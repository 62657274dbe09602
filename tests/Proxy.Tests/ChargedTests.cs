using System.Net;
using System.Text.Json;
using QuotaProxy.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace QuotaProxy.Tests;

/// <summary>
/// Every metered response says what it cost (<c>X-Quota-Charged</c>), and the admin API gives the final
/// figure by request id once a refund or a settlement has changed it: the proxy on Redis, the ledger on
/// PostgreSQL, WireMock as the vendor.
/// </summary>
[Collection(LedgerCollection.Name)]
public sealed class ChargedTests(RedisFixture redis, PostgresFixture postgres)
{
    private const string AdminKey = "charged-admin-key";

    [Fact]
    public async Task EveryMeteredAnswer_SaysWhatItCost_AndTheUsageApi_GivesTheFinalFigureByRequestId()
    {
        using var vendor = new VendorServer();
        vendor.Server.Reset();
        vendor.Server.Given(Request.Create().WithPath("/broken").UsingGet()).RespondWith(Response.Create().WithStatusCode(500).WithBody("vendor broke"));
        vendor.Server.Given(Request.Create().WithPath("/cheap").UsingGet()).RespondWith(Response.Create().WithStatusCode(200).WithHeader("X-Credits-Used", "1").WithBody("{}"));
        vendor.Server.Given(Request.Create().WithPath("/ok").UsingGet()).RespondWith(Response.Create().WithStatusCode(200).WithBody("{}"));
        var config = new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("prod", null), ("test", 2))
            .Route("quotes", pool: "daily", cost: 2)
            .Route("reports", pool: "daily")
            .Route("free")
            .ApiKey("prod-key", "prod")
            .ApiKey("test-key", "test")
            .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix())
            .Admin(LoopbackPorts.Free(), AdminKey)
            .Set("Quota:Ledger:ConnectionString", await postgres.NewDatabaseAsync())
            .Set("Quota:Ledger:PollInterval", "00:00:00.050")
            .Set("ReverseProxy:Routes:quotes:Metadata:Quota.RefundOn", "5xx")
            .Set("ReverseProxy:Routes:reports:Metadata:Quota.MaxCost", "5")
            .Set("ReverseProxy:Routes:reports:Metadata:Quota.CostFromResponseHeader", "X-Credits-Used");
        await using var proxy = await ProxyInstance.StartAsync(config);

        async Task<(HttpStatusCode Status, string? Charged)> Send(string? key, string path, string requestId)
        {
            using var message = new HttpRequestMessage(HttpMethod.Get, path);
            message.Headers.Add("X-Request-Id", requestId);
            if (key is not null)
            {
                message.Headers.Add("X-Api-Key", key);
            }

            using var response = await proxy.Client.SendAsync(message);
            return (response.StatusCode, response.Headers.TryGetValues("X-Quota-Charged", out var values) ? string.Join(",", values) : null);
        }

        Assert.Equal(
            [
                (HttpStatusCode.OK, "2"),                   // charged the route's cost
                (HttpStatusCode.InternalServerError, "2"),  // charged as answered; refunded after
                (HttpStatusCode.OK, "5"),                   // reserved MaxCost; settled after
                (HttpStatusCode.OK, "2"),                   // test's limit of 2, spent
                (HttpStatusCode.TooManyRequests, "0"),      // not admitted
                (HttpStatusCode.Unauthorized, "0"),         // nobody to charge
                (HttpStatusCode.OK, null),                  // not metered: no quota header at all
            ],
            [
                await Send("prod-key", "/quotes/ok", "req-ok"),
                await Send("prod-key", "/quotes/broken", "req-refunded"),
                await Send("prod-key", "/reports/cheap", "req-settled"),
                await Send("test-key", "/quotes/ok", "req-last"),
                await Send("test-key", "/quotes/ok", "req-rejected"),
                await Send(null, "/quotes/ok", "req-anonymous"),
                await Send(null, "/free/ok", "req-free"),
            ]);

        var admin = proxy.Admin!;
        admin.DefaultRequestHeaders.Add("X-Admin-Key", AdminKey);
        async Task<(HttpStatusCode Status, JsonElement Body)> Usage(string requestId)
        {
            using var response = await admin.GetAsync($"/admin/v1/usage/requests/{requestId}");
            return (response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone());
        }

        async Task<JsonElement> Settled(string requestId, long charged, int events) => (await Poll.UntilAsync(
            $"the ledger's events of {requestId}",
            () => Usage(requestId),
            seen => seen.Status == HttpStatusCode.OK && seen.Body.GetProperty("charged").GetInt64() == charged && seen.Body.GetProperty("events").GetArrayLength() == events,
            TimeSpan.FromSeconds(15))).Body;

        IEnumerable<(string Kind, long Credits)> Events(JsonElement usage) =>
            usage.GetProperty("events").EnumerateArray().Select(e => (e.GetProperty("kind").GetString()!, e.GetProperty("credits").GetInt64()));

        Assert.Equal([("debit", 2L)], Events(await Settled("req-ok", 2, 1)));
        Assert.Equal([("debit", 2L), ("refund", -2L)], Events(await Settled("req-refunded", 0, 2)));
        var settled = await Settled("req-settled", 1, 2);
        Assert.Equal([("debit", 5L), ("adjustment", -4L)], Events(settled));
        var pool = Assert.Single(settled.GetProperty("pools").EnumerateArray());
        Assert.Equal(("daily", 1L), (pool.GetProperty("pool").GetString(), pool.GetProperty("charged").GetInt64()));
        Assert.All(settled.GetProperty("events").EnumerateArray(), e => Assert.Equal(("prod", "reports"), (e.GetProperty("tenant").GetString(), e.GetProperty("route").GetString())));
        await Settled("req-last", 2, 1);

        // A rejected request was charged nothing and left nothing in the ledger.
        var (status, problem) = await Usage("req-rejected");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal("urn:quotaproxy:problem:usage-request-unknown", problem.GetProperty("type").GetString());
    }
}
