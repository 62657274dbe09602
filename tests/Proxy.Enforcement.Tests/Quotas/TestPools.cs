using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Tests.Quotas;

/// <summary>Builds pools through the same path production uses (options → <see cref="QuotaModel"/>).</summary>
internal static class TestPools
{
    public static PoolDefinition Create(string name, long limit, string window = "1d", string timeZone = "UTC", params (string Name, long? Limit)[] tenants)
    {
        var options = new QuotaOptions
        {
            Pools =
            {
                [name] = new PoolOptions
                {
                    Limit = limit,
                    Window = window,
                    TimeZone = timeZone,
                    Tenants = tenants.ToDictionary(t => t.Name, t => new TenantOptions { Limit = t.Limit }),
                },
            },
        };
        return QuotaModelBuilder.Build(options).Pools[name];
    }

    public static PoolDefinition Create(string name, PoolOptions options) =>
        QuotaModelBuilder.Build(new QuotaOptions { Pools = { [name] = options } }).Pools[name];

    /// <summary>DESIGN.md's worked example: 250 a day shared by prod, test, dev and e2e.</summary>
    public static PoolDefinition WorkedExample(string name = "vendor-daily") => Create(name, WorkedExampleOptions());

    /// <summary>The worked example's options, to build on (<c>with { … }</c>).</summary>
    public static PoolOptions WorkedExampleOptions() => new()
    {
        Limit = 250,
        Window = "1d",
        Tenants =
        {
            ["prod"] = new TenantOptions { Allocation = 180, Guaranteed = 180, Priority = 1, Limit = 250 },
            ["test"] = new TenantOptions { Allocation = 30, Guaranteed = 10, Priority = 2, Limit = 60 },
            ["dev"] = new TenantOptions { Allocation = 30, Guaranteed = 10, Priority = 3, Limit = 60 },
            ["e2e"] = new TenantOptions { Allocation = 10, Guaranteed = 5, Priority = 4, Limit = 20 },
        },
    };

    public static QuotaDebit Debit(this PoolDefinition pool, string tenant, long cost) => new(pool, pool.Nodes[tenant], cost);
}
