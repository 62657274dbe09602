using System.Globalization;
using Microsoft.AspNetCore.Http;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Http;

/// <summary>
/// Writes the rate-limit headers of a decision: the IETF httpapi pair
/// (<c>RateLimit-Policy: "pool";q=250;w=86400</c>, <c>RateLimit: "pool";r=17;t=3600</c>) and, unless
/// switched off, <c>X-RateLimit-Limit/Remaining/Used/Reset</c> (Reset in Unix seconds).
/// </summary>
internal static class RateLimitHeaders
{
    public const string Policy = "RateLimit-Policy";
    public const string RateLimit = "RateLimit";
    public const string LegacyLimit = "X-RateLimit-Limit";
    public const string LegacyRemaining = "X-RateLimit-Remaining";
    public const string LegacyUsed = "X-RateLimit-Used";
    public const string LegacyReset = "X-RateLimit-Reset";

    /// <summary>
    /// One policy per pool of the route (<c>"daily";q=250;w=86400, "second";q=10;w=1</c>); the legacy set
    /// speaks for <see cref="RouteDecision.ReportedIndex"/>: the pool that rejected, else the tightest.
    /// </summary>
    public static void Write(IHeaderDictionary headers, IReadOnlyList<QuotaDebit> debits, RouteDecision route, bool legacy)
    {
        if (debits.Count == 1)
        {
            headers[Policy] = CachedPolicyOf(debits[0], route.Pools[0]);
            headers[RateLimit] = RateLimitOf(debits[0].Pool.Name, route.Pools[0]);
        }
        else
        {
            headers[Policy] = string.Join(", ", debits.Select((d, i) => PolicyOf(d.Pool.Name, route.Pools[i])));
            headers[RateLimit] = string.Join(", ", debits.Select((d, i) => RateLimitOf(d.Pool.Name, route.Pools[i])));
        }

        if (legacy)
        {
            var decision = route.Pools[route.ReportedIndex];
            headers[LegacyLimit] = decision.Limit.ToString(CultureInfo.InvariantCulture);
            headers[LegacyRemaining] = decision.Remaining.ToString(CultureInfo.InvariantCulture);
            headers[LegacyUsed] = decision.Used.ToString(CultureInfo.InvariantCulture);
            headers[LegacyReset] = ((decision.Window.EndMs + 999) / 1000).ToString(CultureInfo.InvariantCulture);
        }
    }

    /// <summary>
    /// The policy of a one-pool route's tenant: the same string for every request of the node while its limit
    /// and window length stay (they change only with the configuration, which brings new nodes), so made once.
    /// </summary>
    private static string CachedPolicyOf(QuotaDebit debit, in QuotaDecision decision)
    {
        var windowMs = decision.Window.EndMs - decision.Window.StartMs;
        if (debit.Tenant.HeaderCache is CachedPolicy cached && cached.Limit == decision.Limit && cached.WindowMs == windowMs && ReferenceEquals(cached.Pool, debit.Pool.Name))
        {
            return cached.Value;
        }

        var value = PolicyOf(debit.Pool.Name, decision);
        debit.Tenant.HeaderCache = new CachedPolicy(debit.Pool.Name, decision.Limit, windowMs, value);
        return value;
    }

    private sealed record CachedPolicy(string Pool, long Limit, long WindowMs, string Value);

    private static string PolicyOf(string pool, in QuotaDecision decision) =>
        string.Create(CultureInfo.InvariantCulture, $"\"{pool}\";q={decision.Limit};w={(decision.Window.EndMs - decision.Window.StartMs) / 1000}");

    // t: when the caller can next spend anything — the window's reset, or sooner when a rate or a vendor
    // closure is what stopped it.
    private static string RateLimitOf(string pool, in QuotaDecision decision) =>
        string.Create(CultureInfo.InvariantCulture, $"\"{pool}\";r={decision.Remaining};t={decision.SecondsToRetry}");
}
