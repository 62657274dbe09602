using System.Globalization;
using Yarp.ReverseProxy.Configuration;

namespace QuotaProxy.Enforcement.Pricing;

/// <summary>
/// What a route's metadata says about metering: <c>Quota.Pool</c> names the pool, or several separated by
/// commas (a vendor's daily allowance and its per-second limit), all checked and debited in one atomic
/// decision; <c>Quota.Cost</c> the credits one request costs in each (a positive integer, default 1). A
/// route without <c>Quota.Pool</c> is not metered.
/// </summary>
/// <para>
/// <c>Quota.CostFromResponseHeader</c> names a response header (such as <c>X-Credits-Used</c>) carrying what
/// the request really cost: <c>Quota.Cost</c> is then reserved up front, and the difference is charged or
/// given back when the response ends.
/// </para>
internal sealed record RouteQuota(IReadOnlyList<string> Pools, long Cost, RefundPolicy RefundOn, string? CostHeader = null)
{
    public const string CostHeaderKey = "Quota.CostFromResponseHeader";

    /// <summary>The route's pools as one metrics label value: <c>daily</c>, or <c>daily,hourly</c>.</summary>
    public string PoolsLabel { get; } = string.Join(',', Pools);

    public const string PoolKey = "Quota.Pool";
    public const string CostKey = "Quota.Cost";
    public const long DefaultCost = 1;

    /// <returns>The route's metering, or null for an unmetered route.</returns>
    public static RouteQuota? Parse(RouteConfig route)
    {
        if (route.Metadata is null || !route.Metadata.TryGetValue(PoolKey, out var pools) || SplitPools(pools) is not { Count: > 0 } names)
        {
            return null;
        }

        // The validator rejects bad costs at start; this only guards a config that bypassed it.
        return TryParseCost(route.Metadata.GetValueOrDefault(CostKey), out var cost)
            ? new RouteQuota(
                names,
                cost,
                RefundPolicy.Parse(route.Metadata.GetValueOrDefault(RefundPolicy.Key), out _),
                route.Metadata.GetValueOrDefault(CostHeaderKey) is { Length: > 0 } header ? header.Trim() : null)
            : throw new InvalidOperationException($"Route '{route.RouteId}' has an invalid {CostKey}.");
    }

    /// <summary><c>"vendor-daily, vendor-second"</c> → the pool names, in order, blanks dropped.</summary>
    public static IReadOnlyList<string> SplitPools(string? text) =>
        text is null ? [] : text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    /// <summary>The pool lists of every metered route in a <c>ReverseProxy:Routes</c> section.</summary>
    public static IEnumerable<IReadOnlyList<string>> PoolsOfRoutes(Microsoft.Extensions.Configuration.IConfigurationSection routes) =>
        routes.GetChildren()
            .Select(route => SplitPools(route.GetSection("Metadata")[PoolKey]))
            .Where(pools => pools.Count > 0);

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
