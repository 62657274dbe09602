using System.Net;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>The credits-used gauges follow the store, not only this replica's own decisions.</summary>
[Collection(RedisCollection.Name)]
public sealed class UsageGaugeTests(RedisFixture redis)
{
    [Fact]
    public async Task UsedGauges_ShowEveryTenantFromTheStart_AndFollowDebitsMadeThroughAnotherReplica()
    {
        using var vendor = new VendorServer();
        var config = new TestProxyConfig(vendor.Url)
            .Pool("daily", 250, "1d", "UTC", ("prod", 225), ("e2e", 10))
            .Route("quotes", pool: "daily", cost: 2)
            .ApiKey("e2e-key", "e2e")
            .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix(), timeout: TimeSpan.FromSeconds(2))
            .Set("Quota:Metrics:UsageRefreshInterval", "00:00:01");
        await using var watched = await ProxyInstance.StartAsync(config);
        await using var other = await ProxyInstance.StartAsync(config);

        var before = await watched.MetricsWhenAsync(m => m.Value("quota_proxy_tenant_credits_limit", ("tenant", "e2e")) == 10);
        for (var i = 0; i < 3; i++)
        {
            using var response = await other.GetAsync("e2e-key", "/quotes/x");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var after = await watched.MetricsWhenAsync(m => m.Value("quota_proxy_tenant_credits_used", ("tenant", "e2e")) == 6);

        // Neither tenant has sent a request through the watched replica: both show, with their limits.
        Assert.Equal((0d, 225d), (before.Value("quota_proxy_tenant_credits_used", ("pool", "daily"), ("tenant", "prod")), before.Value("quota_proxy_tenant_credits_limit", ("pool", "daily"), ("tenant", "prod"))));
        Assert.Equal((0d, 10d), (before.Value("quota_proxy_tenant_credits_used", ("pool", "daily"), ("tenant", "e2e")), before.Value("quota_proxy_tenant_credits_limit", ("pool", "daily"), ("tenant", "e2e"))));
        Assert.Equal(6, after.Value("quota_proxy_tenant_credits_used", ("pool", "daily"), ("tenant", "e2e")));
        Assert.Equal(6, after.Value("quota_proxy_pool_credits_used", ("pool", "daily")));
        Assert.Equal(250, after.Value("quota_proxy_pool_credits_limit", ("pool", "daily")));
        Assert.Equal(0, after.Value("quota_proxy_requests_total"));
        Assert.True(after.Value("quota_proxy_store_duration_seconds_count", ("operation", "read")) >= 2);
    }
}
