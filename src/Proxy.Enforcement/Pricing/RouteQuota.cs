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
/// <param name="MaxReplays">
/// On a route whose vendor honours the idempotency key (<c>"Quota.VendorIdempotent": "true"</c>), how many
/// retries of one key are free in a window (<c>Quota.MaxReplays</c>); 0 elsewhere: there a reused key is
/// charged like any request, since the vendor would do (and bill) the work again.
/// </param>
internal sealed record RouteQuota(IReadOnlyList<string> Pools, long Cost, RefundPolicy RefundOn, string? CostHeader = null, int MaxReplays = 0)
{
    public const string VendorIdempotentKey = "Quota.VendorIdempotent";

    /// <summary>On an unmetered route: <c>true</c> to add the cluster's vendor credential all the same (off by default).</summary>
    public const string ForwardCredentialKey = "Quota.ForwardCredential";
    public const string MaxReplaysKey = "Quota.MaxReplays";
    public const int DefaultMaxReplays = 3;

    /// <summary>The most <c>Quota.MaxReplays</c> may be: a replay is free of credits, so the bound is part of the allowance's promise.</summary>
    public const int MaxReplaysLimit = 100;

    /// <summary>Whether a retry with the same idempotency key can be free on this route.</summary>
    public bool ReplaysAreFree => MaxReplays > 0;

    public const string CostHeaderKey = "Quota.CostFromResponseHeader";

    /// <summary>
    /// With <see cref="CostHeaderKey"/>: the most a request of the route may cost. It is what is reserved (so
    /// a settlement only ever gives back, and never takes what another tenant's guarantee holds), and a
    /// response header above it is capped to it.
    /// </summary>
    public const string MaxCostKey = "Quota.MaxCost";

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

        // The validator rejects bad costs at start; this only guards a config that bypassed it. A cost settled
        // from the response reserves its maximum.
        var costHeader = route.Metadata.GetValueOrDefault(CostHeaderKey) is { Length: > 0 } named ? named.Trim() : null;
        return TryParseCost(costHeader is null ? route.Metadata.GetValueOrDefault(CostKey) : route.Metadata.GetValueOrDefault(MaxCostKey), out var cost)
            ? new RouteQuota(
                names,
                cost,
                RefundPolicy.Parse(route.Metadata.GetValueOrDefault(RefundPolicy.Key), out _),
                costHeader,
                TryParseReplays(route.Metadata.GetValueOrDefault(VendorIdempotentKey), route.Metadata.GetValueOrDefault(MaxReplaysKey), out var replays) ? replays : 0)
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

    /// <summary>
    /// <c>Quota.VendorIdempotent</c> (<c>true</c> or <c>false</c>, default false) and <c>Quota.MaxReplays</c>
    /// (1 to <see cref="MaxReplaysLimit"/>, default <see cref="DefaultMaxReplays"/>) → the free replays per key.
    /// </summary>
    public static bool TryParseReplays(string? vendorIdempotent, string? maxReplays, out int replays)
    {
        replays = 0;
        if (!bool.TryParse(vendorIdempotent ?? "false", out var honoured))
        {
            return false;
        }

        var max = DefaultMaxReplays;
        if (maxReplays is not null && (!int.TryParse(maxReplays, NumberStyles.None, CultureInfo.InvariantCulture, out max) || max is < 1 or > MaxReplaysLimit))
        {
            return false;
        }

        replays = honoured ? max : 0;
        return true;
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
