using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Pricing;

/// <summary>
/// What a request of a tenant on a metered route costs: one debit of the route's cost per pool the route
/// draws on. The caller must be a tenant of each.
/// </summary>
internal static class RoutePrice
{
    /// <returns>The debits, or null with <paramref name="missingPool"/> (a pool a reload has just removed) or <paramref name="notInPool"/> (the tenant is not in that pool) set.</returns>
    public static QuotaDebit[]? Debits(RouteQuota quota, QuotaModel model, string tenant, out string? missingPool, out string? notInPool) =>
        Debits(quota.Pools, quota.Cost, model, tenant, out missingPool, out notInPool);

    /// <param name="pools">The pools, in the route's order.</param>
    /// <param name="cost">Credits per pool.</param>
    public static QuotaDebit[]? Debits(IReadOnlyList<string> pools, long cost, QuotaModel model, string tenant, out string? missingPool, out string? notInPool)
    {
        var quota = (Pools: pools, Cost: cost);
        missingPool = notInPool = null;
        var debits = new QuotaDebit[quota.Pools.Count];
        for (var i = 0; i < debits.Length; i++)
        {
            if (!model.Pools.TryGetValue(quota.Pools[i], out var pool))
            {
                missingPool = quota.Pools[i];
                return null;
            }

            if (!pool.Nodes.TryGetValue(tenant, out var node))
            {
                notInPool = pool.Name;
                return null;
            }

            debits[i] = new QuotaDebit(pool, node, quota.Cost);
        }

        return debits;
    }
}
