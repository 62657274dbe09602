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

    public static void Write(IHeaderDictionary headers, string pool, in QuotaDecision decision, bool legacy)
    {
        var limit = decision.Limit;
        var windowSeconds = (decision.Window.EndMs - decision.Window.StartMs) / 1000;
        headers[Policy] = string.Create(CultureInfo.InvariantCulture, $"\"{pool}\";q={limit};w={windowSeconds}");
        // t: when the caller can next spend anything — the window's reset, or sooner when a rate or a
        // vendor closure is what stopped it.
        headers[RateLimit] = string.Create(CultureInfo.InvariantCulture, $"\"{pool}\";r={decision.Remaining};t={decision.SecondsToRetry}");
        if (legacy)
        {
            headers[LegacyLimit] = limit.ToString(CultureInfo.InvariantCulture);
            headers[LegacyRemaining] = decision.Remaining.ToString(CultureInfo.InvariantCulture);
            headers[LegacyUsed] = decision.Used.ToString(CultureInfo.InvariantCulture);
            headers[LegacyReset] = ((decision.Window.EndMs + 999) / 1000).ToString(CultureInfo.InvariantCulture);
        }
    }
}

/// <summary>The proxy's own headers on admitted responses, beyond the rate-limit set.</summary>
internal static class QuotaHeaders
{
    /// <summary>A node on the caller's path is above its SoftLimit: <c>soft-limit; pool="p"; node="test"; soft-limit=50</c>.</summary>
    public const string Warning = "X-Quota-Warning";

    /// <summary>Credits of this request above a Limit on the path (admitted as overage).</summary>
    public const string Overage = "X-Quota-Overage";

    /// <summary>Shadow mode let through what enforcement would have rejected: <c>would-reject; limited-by=tenant; node="dev"</c>.</summary>
    public const string Shadow = "X-Quota-Shadow";
}
