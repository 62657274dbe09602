using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Http;

/// <summary>The <c>application/problem+json</c> answers the quota step gives instead of forwarding.</summary>
internal static class QuotaProblems
{
    public const string ContentType = "application/problem+json";

    public static Task UnidentifiedAsync(HttpContext context, string apiKeyHeader) => WriteAsync(context, new ProblemDetails
    {
        Type = "urn:quotaproxy:problem:unidentified",
        Title = "Caller not identified",
        Status = StatusCodes.Status401Unauthorized,
        Detail = $"This route is metered. Send a valid API key in the {apiKeyHeader} header.",
    });

    public static Task ForbiddenAsync(HttpContext context, string tenant, string pool) => WriteAsync(context, new ProblemDetails
    {
        Type = "urn:quotaproxy:problem:tenant-not-in-pool",
        Title = "Tenant has no share of this pool",
        Status = StatusCodes.Status403Forbidden,
        Detail = $"Tenant '{tenant}' is not a tenant of pool '{pool}', which this route draws on.",
        Extensions = { ["pool"] = pool, ["tenant"] = tenant },
    });

    public static Task StoreUnavailableAsync(HttpContext context, TimeSpan retryAfter)
    {
        var seconds = (long)Math.Max(1, Math.Ceiling(retryAfter.TotalSeconds));
        context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        return WriteAsync(context, new ProblemDetails
        {
            Type = "urn:quotaproxy:problem:store-unavailable",
            Title = "Quota store unavailable",
            Status = StatusCodes.Status503ServiceUnavailable,
            Detail = $"The quota store did not answer in time, so the request was not forwarded. Retry in {seconds} s.",
        });
    }

    public static Task QuotaExceededAsync(HttpContext context, string pool, string tenant, long cost, in QuotaDecision decision) => decision.LimitedBy switch
    {
        QuotaLimitedBy.Rate => RateLimitedAsync(context, pool, tenant, cost, decision),
        QuotaLimitedBy.Vendor => VendorLimitedAsync(context, pool, tenant, decision),
        QuotaLimitedBy.Concurrency => ConcurrencyLimitedAsync(context, pool, tenant, decision),
        _ => CreditsExceededAsync(context, pool, tenant, cost, decision),
    };

    private static Task RateLimitedAsync(HttpContext context, string pool, string tenant, long cost, in QuotaDecision decision)
    {
        var node = decision.LimitingNode!;
        var rate = node.Rate!;
        var retryAfter = decision.SecondsToRetry;
        var retryAfterMs = (decision.RetryAfterMicros + 999) / 1000;
        context.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
        var where = node.IsRoot ? $"pool '{pool}'" : $"tenant '{node.Path}'";
        return WriteAsync(context, new ProblemDetails
        {
            Type = "urn:quotaproxy:problem:rate-limited",
            Title = "Rate limit exceeded",
            Status = StatusCodes.Status429TooManyRequests,
            Detail = $"The request costs {cost} credit{(cost == 1 ? "" : "s")} but {where} allows {rate} with a burst of {rate.Burst}; "
                + $"it fits again in {retryAfterMs} ms. Credits in this window are not the limit: {decision.Remaining} remain.",
            Extensions =
            {
                ["pool"] = pool,
                ["tenant"] = tenant,
                ["cost"] = cost,
                ["remaining"] = decision.Remaining,
                ["limitedBy"] = LimitedByName(decision.LimitedBy),
                ["limitingNode"] = node.IsRoot ? pool : node.Path,
                ["rate"] = rate.ToString(),
                ["burst"] = rate.Burst,
                ["retryAfterMs"] = retryAfterMs,
                ["retryAfterSeconds"] = retryAfter,
            },
        });
    }

    private static Task ConcurrencyLimitedAsync(HttpContext context, string pool, string tenant, in QuotaDecision decision)
    {
        var node = decision.LimitingNode!;
        var retryAfter = decision.SecondsToRetry;
        context.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
        var where = node.IsRoot ? $"pool '{pool}'" : $"tenant '{node.Path}'";
        return WriteAsync(context, new ProblemDetails
        {
            Type = "urn:quotaproxy:problem:concurrency-limited",
            Title = "Too many requests in flight",
            Status = StatusCodes.Status429TooManyRequests,
            Detail = $"{char.ToUpperInvariant(where[0])}{where[1..]} allows {node.MaxInFlight} request{(node.MaxInFlight == 1 ? "" : "s")} in flight at once, and that many are. Retry when one of them has finished.",
            Extensions =
            {
                ["pool"] = pool,
                ["tenant"] = tenant,
                ["remaining"] = decision.Remaining,
                ["limitedBy"] = LimitedByName(decision.LimitedBy),
                ["limitingNode"] = node.IsRoot ? pool : node.Path,
                ["maxInFlight"] = node.MaxInFlight,
                ["retryAfterSeconds"] = retryAfter,
            },
        });
    }

    private static Task VendorLimitedAsync(HttpContext context, string pool, string tenant, in QuotaDecision decision)
    {
        var retryAfter = decision.SecondsToRetry;
        var until = DateTimeOffset.FromUnixTimeMilliseconds(decision.NowMs + ((decision.RetryAfterMicros + 999) / 1000));
        context.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
        return WriteAsync(context, new ProblemDetails
        {
            Type = "urn:quotaproxy:problem:vendor-limited",
            Title = "Vendor rate limit",
            Status = StatusCodes.Status429TooManyRequests,
            Detail = $"The vendor answered 429 for pool '{pool}', so the proxy holds its requests back until {until.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC, in {Describe(TimeSpan.FromSeconds(retryAfter))}. The vendor was not called.",
            Extensions =
            {
                ["pool"] = pool,
                ["tenant"] = tenant,
                ["remaining"] = decision.Remaining,
                ["limitedBy"] = LimitedByName(decision.LimitedBy),
                ["limitingNode"] = pool,
                ["closedUntil"] = until.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
                ["retryAfterSeconds"] = retryAfter,
            },
        });
    }

    private static Task CreditsExceededAsync(HttpContext context, string pool, string tenant, long cost, in QuotaDecision decision)
    {
        var reset = decision.Window.End;
        var retryAfter = decision.SecondsToReset;
        context.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
        var node = decision.LimitingNode is { IsRoot: false } limiting ? limiting.Path : tenant;
        var which = decision.LimitedBy switch
        {
            QuotaLimitedBy.Tenant => $"tenant '{node}' has reached its limit and",
            QuotaLimitedBy.Reserved => $"what is left in pool '{pool}' is held for other tenants' guarantees and higher-priority allocations, so tenant '{tenant}'",
            _ => $"pool '{pool}' has run dry and tenant '{tenant}'",
        };
        return WriteAsync(context, new ProblemDetails
        {
            Type = "urn:quotaproxy:problem:quota-exceeded",
            Title = "Quota exceeded",
            Status = StatusCodes.Status429TooManyRequests,
            Detail = $"The request costs {cost} credit{(cost == 1 ? "" : "s")} but {which} can spend {decision.Remaining} more in this window. "
                + $"The window resets at {reset.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC, in {Describe(TimeSpan.FromSeconds(retryAfter))}.",
            Extensions =
            {
                ["pool"] = pool,
                ["tenant"] = tenant,
                ["cost"] = cost,
                ["remaining"] = decision.Remaining,
                ["limit"] = decision.Limit,
                ["used"] = decision.Used,
                ["limitedBy"] = LimitedByName(decision.LimitedBy),
                ["limitingNode"] = decision.LimitingNode is { IsRoot: false } n ? n.Path : pool,
                ["reset"] = reset.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
                ["retryAfterSeconds"] = retryAfter,
            },
        });
    }

    /// <summary>The name a problem body and a shadow header give to what limited a request.</summary>
    internal static string LimitedByName(QuotaLimitedBy limitedBy) => limitedBy switch
    {
        QuotaLimitedBy.Tenant => "tenant",
        QuotaLimitedBy.Pool => "pool",
        QuotaLimitedBy.Reserved => "reserved",
        QuotaLimitedBy.Rate => "rate",
        QuotaLimitedBy.Vendor => "vendor",
        QuotaLimitedBy.Concurrency => "concurrency",
        _ => "none",
    };

    /// <summary>"3 h 12 min", "45 s": a reset time a person reads at a glance.</summary>
    internal static string Describe(TimeSpan span) => span switch
    {
        { TotalDays: >= 1 } => $"{(int)span.TotalDays} d {span.Hours} h",
        { TotalHours: >= 1 } => $"{(int)span.TotalHours} h {span.Minutes} min",
        { TotalMinutes: >= 1 } => $"{(int)span.TotalMinutes} min {span.Seconds} s",
        _ => $"{Math.Max(1, (int)Math.Ceiling(span.TotalSeconds))} s",
    };

    private static Task WriteAsync(HttpContext context, ProblemDetails problem)
    {
        context.Response.StatusCode = problem.Status!.Value;
        return context.Response.WriteAsJsonAsync(problem, options: null, contentType: ContentType);
    }
}
