using System.Net;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>
/// DESIGN.md's worked example through the real proxy on real Redis, one sentence per assertion: 250 a day
/// shared by prod (180/180/1), test (30/10/2), dev (30/10/3) and e2e (10/5/4), as Allocation/Guaranteed/Priority.
/// The same tree is config/vendor-250-per-day.json.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class WorkedExampleTests(RedisFixture redis)
{
    private static readonly string[] Tenants = ["prod", "test", "dev", "e2e"];

    private TestProxyConfig Config(VendorServer vendor)
    {
        var config = new TestProxyConfig(vendor.Url)
            .Pool("vendor-daily", 250, "1d", "UTC", ("prod", 250), ("test", 60), ("dev", 60), ("e2e", 20))
            .Route("downloads", pool: "vendor-daily", cost: 1)
            .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix(), timeout: TimeSpan.FromSeconds(2));
        foreach (var (tenant, allocation, guaranteed, priority) in new[] { ("prod", 180, 180, 1), ("test", 30, 10, 2), ("dev", 30, 10, 3), ("e2e", 10, 5, 4) })
        {
            config.Set($"Quota:Pools:vendor-daily:Tenants:{tenant}:Allocation", $"{allocation}")
                .Set($"Quota:Pools:vendor-daily:Tenants:{tenant}:Guaranteed", $"{guaranteed}")
                .Set($"Quota:Pools:vendor-daily:Tenants:{tenant}:Priority", $"{priority}");
        }

        foreach (var tenant in Tenants)
        {
            config.ApiKey($"{tenant}-key", tenant);
        }

        return config;
    }

    [Fact]
    public async Task ProdSpike_Stops_At225_ThenEveryOtherEnvironmentSpendsItsGuarantee_AndTheVendorSeesAtMost250()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));

        // "prod may take its 180, then borrow what test, dev and e2e hold above their floors: up to 225."
        var prod = await proxy.SendAsync("prod-key", 240);
        Assert.Equal(225, prod.Admitted);
        Assert.Equal("reserved", prod.LastProblem!.Value.GetProperty("limitedBy").GetString());
        Assert.Equal(0, prod.LastProblem!.Value.GetProperty("remaining").GetInt64());

        // "… never their 25 guaranteed credits."
        Assert.Equal(10, (await proxy.SendAsync("test-key", 15)).Admitted);
        Assert.Equal(10, (await proxy.SendAsync("dev-key", 15)).Admitted);
        var e2e = await proxy.SendAsync("e2e-key", 15);
        Assert.Equal(5, e2e.Admitted);
        Assert.Equal("pool", e2e.LastProblem!.Value.GetProperty("limitedBy").GetString());

        // "The vendor sees at most 250 calls that day."
        Assert.Equal(250, vendor.Calls.Count);
    }

    [Fact]
    public async Task E2eOnAnIdleDay_GetsItsAllocationOf10_AndNoMore()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));

        var e2e = await proxy.SendAsync("e2e-key", 15);

        Assert.Equal(10, e2e.Admitted);
        Assert.Equal("reserved", e2e.LastProblem!.Value.GetProperty("limitedBy").GetString());
        Assert.Equal(10, vendor.Calls.Count);
    }

    [Fact]
    public async Task SoftLimitOverageAndShadow_ShowInTheHeaders()
    {
        using var vendor = new VendorServer();
        var config = new TestProxyConfig(vendor.Url)
            .Pool("daily", 100, "1d", "UTC", ("prod", 3), ("lab", 2))
            .Set("Quota:Pools:daily:Tenants:prod:SoftLimit", "1")
            .Set("Quota:Pools:daily:Tenants:prod:Overage", "1")
            .Set("Quota:Pools:daily:Tenants:lab:Mode", "Shadow")
            .Route("downloads", pool: "daily", cost: 1)
            .ApiKey("prod-key", "prod")
            .ApiKey("lab-key", "lab")
            .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix());
        await using var proxy = await ProxyInstance.StartAsync(config);

        var prod = new List<HttpResponseMessage>();
        for (var i = 0; i < 5; i++)
        {
            prod.Add(await proxy.GetAsync("prod-key"));
        }

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], prod.Select(r => r.StatusCode));
        Assert.False(prod[0].Headers.Contains("X-Quota-Warning"));
        Assert.Equal("soft-limit; pool=\"daily\"; node=\"prod\"; soft-limit=1", prod[1].Header("X-Quota-Warning"));
        Assert.False(prod[2].Headers.Contains("X-Quota-Overage"));
        Assert.Equal("1", prod[3].Header("X-Quota-Overage"));

        var lab = new List<HttpResponseMessage>();
        for (var i = 0; i < 3; i++)
        {
            lab.Add(await proxy.GetAsync("lab-key"));
        }

        Assert.All(lab, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.False(lab[1].Headers.Contains("X-Quota-Shadow"));
        Assert.Equal("would-reject; limited-by=tenant; node=\"lab\"", lab[2].Header("X-Quota-Shadow"));
        Assert.Equal("0", lab[2].Header("X-RateLimit-Remaining"));
        Assert.Equal("3", lab[2].Header("X-RateLimit-Used"));
        Assert.Equal(4 + 3, vendor.Calls.Count);
    }

}
