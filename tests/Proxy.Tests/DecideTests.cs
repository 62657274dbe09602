using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using QuotaProxy.Enforcement.Redis;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>
/// <c>POST /quota/v1/decide</c> through the real proxy on real Redis: asked before each request of a random
/// sequence, it answers exactly what the request then gets, and spends nothing, holds nothing and calls no
/// vendor. Then the question's own edges: who may ask, what cannot be read, and a pool that limits asking.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class DecideTests(RedisFixture redis)
{
    private static readonly string[] Keys = ["prod-key", "test-key", "dev-key", "e2e-key"];

    private TestProxyConfig Config(VendorServer vendor, string prefix)
    {
        var config = new TestProxyConfig(vendor.Url)
            .Pool("daily", 40, "1d", "UTC", ("prod", 40), ("test", 12), ("dev", 12), ("e2e", 6))
            .Pool("asking", 1000, "1d", "UTC", ("prod", 2), ("test", null))
            .Route("quotes", pool: "daily", cost: 1)
            .Route("reports", pool: "daily", cost: 3)
            .Route("free")
            .ApiKey("prod-key", "prod")
            .ApiKey("test-key", "test")
            .ApiKey("dev-key", "dev")
            .ApiKey("e2e-key", "e2e")
            .Redis(redis.ConnectionString, prefix, timeout: TimeSpan.FromMilliseconds(50)); // the default store timeout
        foreach (var (tenant, allocation, guaranteed, priority) in new[] { ("prod", 20, 10, 1), ("test", 8, 4, 2), ("dev", 8, 2, 3), ("e2e", 4, 1, 4) })
        {
            config.Set($"Quota:Pools:daily:Tenants:{tenant}:Allocation", $"{allocation}")
                .Set($"Quota:Pools:daily:Tenants:{tenant}:Guaranteed", $"{guaranteed}")
                .Set($"Quota:Pools:daily:Tenants:{tenant}:Priority", $"{priority}");
        }

        // No Rate here: a rate refills between a question and the request after it, so the two may rightly
        // differ; TreeDifferentialTests holds question and debit to one answer at the same instant, rates included.
        return config;
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> AskAsync(ProxyInstance proxy, string? key, object question)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, "/quota/v1/decide") { Content = JsonContent.Create(question) };
        if (key is not null)
        {
            message.Headers.Add("X-Api-Key", key);
        }

        using var response = await proxy.Client.SendAsync(message);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task AskedBeforeEachRequest_ItAnswersWhatTheRequestGets_AndSpendsNothing(int seed)
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, prefix));
        var random = new Random(seed);
        var (admitted, rejected, credits) = (0, 0, 0L);
        for (var step = 0; step < 150; step++)
        {
            var key = Keys[random.Next(Keys.Length)];
            var (path, cost) = random.Next(3) == 0 ? ("/reports/x", 3) : ("/quotes/x", 1);
            var (asked, answer) = await AskAsync(proxy, key, new { method = "GET", path });
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Add("X-Api-Key", key);
            using var response = await proxy.Client.SendAsync(request);

            var where = $"seed {seed}, step {step}, {key} {path}: asked {answer}";
            Assert.True(asked == HttpStatusCode.OK, where);
            Assert.True((int)response.StatusCode == answer.GetProperty("status").GetInt32(), $"{where}, got {(int)response.StatusCode}");
            Assert.Equal(response.StatusCode == HttpStatusCode.OK, answer.GetProperty("admitted").GetBoolean());
            Assert.Equal(cost, answer.GetProperty("cost").GetInt64());
            if (response.StatusCode == HttpStatusCode.OK)
            {
                admitted++;
                credits += cost;
            }
            else
            {
                rejected++;
                var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
                Assert.True(
                    (problem.GetProperty("limitedBy").GetString(), problem.GetProperty("limitingNode").GetString()) == (answer.GetProperty("limitedBy").GetString(), answer.GetProperty("limitingNode").GetString()),
                    $"{where}, the request's problem: {problem}");
                // The request comes a moment after the question: its wait may be a second shorter.
                Assert.InRange(answer.GetProperty("retryAfterSeconds").GetInt64() - problem.GetProperty("retryAfterSeconds").GetInt64(), 0, 1);
            }
        }

        // Questions spent nothing and called nobody: the vendor saw the requests only, the counters hold their credits only.
        Assert.True(admitted > 10 && rejected > 10, $"the sequence should exercise both answers: {admitted} admitted, {rejected} rejected");
        Assert.Equal(admitted, vendor.Calls.Count);
        var usage = await redis.Connection.GetDatabase().HashGetAsync(new RedisKeys(prefix).PoolUsage("daily"), "pool");
        Assert.Equal(credits, (long)usage);
    }

    [Fact]
    public async Task TheQuestionsEdges_WhoMayAsk_WhatCannotBeRead_NodesOnThePath_AndAPoolThatLimitsAsking()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor, RedisFixture.NewKeyPrefix()).Set("Quota:Decide:Pool", "asking"));

        var anonymous = await AskAsync(proxy, null, new { method = "GET", path = "/quotes/x" });
        var unreadable = await AskAsync(proxy, "prod-key", new { method = "get", path = "quotes", cost = 0 });
        var nowhere = await AskAsync(proxy, "prod-key", new { method = "GET", path = "/nowhere" });
        var unmetered = await AskAsync(proxy, "prod-key", new { method = "GET", path = "/free/x?with=query" });
        var priced = await AskAsync(proxy, "prod-key", new { method = "GET", path = "/quotes/x", cost = 41 });
        // prod may ask 2 questions a day in the asking pool (those refused before they are read or routed cost
        // nothing): the third is refused like any request over a limit.
        var fourth = await AskAsync(proxy, "prod-key", new { method = "GET", path = "/quotes/x" });
        var notInAskingPool = await AskAsync(proxy, "dev-key", new { method = "GET", path = "/quotes/x" });
        var test = await AskAsync(proxy, "test-key", new { method = "GET", path = "/reports/x" });

        Assert.Equal((HttpStatusCode.Unauthorized, "urn:quotaproxy:problem:unidentified"), (anonymous.Status, anonymous.Body.GetProperty("type").GetString()));
        Assert.Equal(HttpStatusCode.BadRequest, unreadable.Status);
        Assert.Equal(3, unreadable.Body.GetProperty("errors").GetArrayLength());
        Assert.Equal(HttpStatusCode.NotFound, nowhere.Status);
        Assert.Equal((HttpStatusCode.OK, false, "free"), (unmetered.Status, unmetered.Body.GetProperty("metered").GetBoolean(), unmetered.Body.GetProperty("route").GetString()));
        // A cost of 41 in a pool of 40: the pool says no, before any node below it.
        Assert.Equal((false, 429, "pool", "daily"), (priced.Body.GetProperty("admitted").GetBoolean(), priced.Body.GetProperty("status").GetInt32(), priced.Body.GetProperty("limitedBy").GetString(), priced.Body.GetProperty("limitingNode").GetString()));
        Assert.Equal(HttpStatusCode.TooManyRequests, fourth.Status);
        Assert.Equal(("asking", "tenant"), (fourth.Body.GetProperty("pool").GetString(), fourth.Body.GetProperty("limitedBy").GetString()));
        Assert.Equal((HttpStatusCode.Forbidden, "asking"), (notInAskingPool.Status, notInAskingPool.Body.GetProperty("pool").GetString()));
        // Every node on the path, pool first, with what it has used and what the caller could spend there now.
        var nodes = test.Body.GetProperty("pools")[0].GetProperty("nodes").EnumerateArray()
            .Select(n => (n.GetProperty("node").GetString(), n.GetProperty("used").GetInt64(), n.GetProperty("limit").GetInt64())).ToList();
        Assert.Equal([("daily", 0L, 40L), ("test", 0L, 12L)], nodes);
        Assert.Equal((true, 3L), (test.Body.GetProperty("admitted").GetBoolean(), test.Body.GetProperty("cost").GetInt64()));
        Assert.Empty(vendor.Calls);
    }
}
