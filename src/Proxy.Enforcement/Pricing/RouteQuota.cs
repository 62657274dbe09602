using System.Globalization;
using System.Runtime.CompilerServices;
using Yarp.ReverseProxy.Configuration;

namespace QuotaProxy.Enforcement.Pricing;

/// <summary>
/// What a route's metadata says about metering: <c>Quota.Pool</c> names the pool, <c>Quota.Cost</c> the
/// credits one request costs (a positive integer, default 1). A route without <c>Quota.Pool</c> is not metered.
/// </summary>
internal sealed record RouteQuota(string Pool, long Cost)
{
    public const string PoolKey = "Quota.Pool";
    public const string CostKey = "Quota.Cost";
    public const long DefaultCost = 1;

    /// <returns>The route's metering, or null for an unmetered route.</returns>
    public static RouteQuota? Parse(RouteConfig route)
    {
        if (route.Metadata is null || !route.Metadata.TryGetValue(PoolKey, out var pool) || string.IsNullOrWhiteSpace(pool))
        {
            return null;
        }

        // The validator rejects bad costs at start; this only guards a config that bypassed it.
        return TryParseCost(route.Metadata.GetValueOrDefault(CostKey), out var cost)
            ? new RouteQuota(pool, cost)
            : throw new InvalidOperationException($"Route '{route.RouteId}' has an invalid {CostKey}.");
    }

    public static bool TryParseCost(string? text, out long cost)
    {
        if (text is null)
        {
            cost = DefaultCost;
            return true;
        }

        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out cost) && cost > 0;
    }
}

/// <summary>Parses each route's metering once per <see cref="RouteConfig"/> object (YARP builds new ones on reload).</summary>
internal sealed class RouteQuotaCatalog
{
    private readonly ConditionalWeakTable<RouteConfig, RouteQuota?> _parsed = [];

    public RouteQuota? For(RouteConfig route) => _parsed.GetValue(route, RouteQuota.Parse);
}
