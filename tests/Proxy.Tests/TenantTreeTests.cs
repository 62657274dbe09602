using System.Net;
using QuotaProxy.Enforcement.Redis;
using QuotaProxy.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace QuotaProxy.Tests;

/// <summary>Nested tenants and leases at the door: the real proxy on real Redis, WireMock as the vendor.</summary>
[Collection(RedisCollection.Name)]
public sealed class TenantTreeTests(RedisFixture redis)
{
    [Fact]
    public async Task NestedTenants_ChargeEveryNodeUpToThePool_AndTheTightestNodeOnThePathStopsTheCaller()
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var config = new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("acme", 5))
            .Set("Quota:Pools:daily:Tenants:acme:Tenants:search:Limit", "3")
            .Set("Quota:Pools:daily:Tenants:acme:Tenants:ads:Limit", "4")
            .Route("downloads", pool: "daily", cost: 1)
            .ApiKey("search-key", "acme/search")
            .ApiKey("ads-key", "acme/ads")
            .Redis(redis.ConnectionString, prefix, timeout: TimeSpan.FromSeconds(2));
        await using var proxy = await ProxyInstance.StartAsync(config);

        var search = await proxy.SendAsync("search-key", 4);
        var ads = await proxy.SendAsync("ads-key", 4);

        Assert.Equal(3, search.Admitted);
        Assert.Equal("tenant", search.LastProblem!.Value.GetProperty("limitedBy").GetString());
        Assert.Equal("acme/search", search.LastProblem!.Value.GetProperty("limitingNode").GetString());
        Assert.Equal(2, ads.Admitted);
        Assert.Equal("acme", ads.LastProblem!.Value.GetProperty("limitingNode").GetString());
        Assert.Equal(5, vendor.Calls.Count);

        var hash = (await redis.Connection.GetDatabase().HashGetAllAsync(new RedisKeys(prefix).PoolUsage("daily")))
            .ToDictionary(e => e.Name.ToString(), e => (long)e.Value);
        Assert.Equal((5, 5, 3, 2), (hash["pool"], hash["t:acme"], hash["t:acme/search"], hash["t:acme/ads"]));
    }

    [Fact]
    public async Task MaxInFlight_AVendorErrorEndsTheResponse_AndFreesTheSlot()
    {
        using var vendor = new VendorServer();
        vendor.Server.Reset();
        vendor.Server.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(502).WithBody("bad gateway"));
        var config = new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("prod", null))
            .Set("Quota:Pools:daily:MaxInFlight", "1")
            .Route("downloads", pool: "daily", cost: 1)
            .ApiKey("prod-key", "prod")
            .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix(), timeout: TimeSpan.FromSeconds(2));
        await using var proxy = await ProxyInstance.StartAsync(config);

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 3; i++)
        {
            using var response = await proxy.GetAsync("prod-key");
            statuses.Add(response.StatusCode);
        }

        // Each 502 ended its response, so the next request found the one slot free.
        Assert.Equal([HttpStatusCode.BadGateway, HttpStatusCode.BadGateway, HttpStatusCode.BadGateway], statuses);
        Assert.Equal(3, vendor.Calls.Count);
    }
}
