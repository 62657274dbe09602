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
        return QuotaModel.Create(options).Pools[name];
    }

    public static QuotaDebit Debit(this PoolDefinition pool, string tenant, long cost) => new(pool, pool.Tenants[tenant], cost);
}
