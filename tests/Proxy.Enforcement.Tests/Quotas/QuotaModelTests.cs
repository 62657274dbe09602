using QuotaProxy.Enforcement.Configuration;

namespace QuotaProxy.Enforcement.Tests.Quotas;

public sealed class QuotaModelTests
{
    private static QuotaOptions Pools(params string[] names)
    {
        var options = new QuotaOptions();
        foreach (var name in names)
        {
            options.Pools[name] = new PoolOptions { Limit = 10, Window = "1d" };
        }

        return options;
    }

    [Fact]
    public void Create_PoolsLinkedByRoutes_ShareTheFirstNameAsHashTag_OthersKeepTheirOwn()
    {
        var model = QuotaModelBuilder.Build(Pools("daily", "second", "minute", "other"), [["second", "minute"], ["minute", "daily"], ["other"]]);

        Assert.Equal("daily", model.Pools["daily"].HashTag);
        Assert.Equal("daily", model.Pools["second"].HashTag);
        Assert.Equal("daily", model.Pools["minute"].HashTag);
        Assert.Equal("other", model.Pools["other"].HashTag);
    }
}
