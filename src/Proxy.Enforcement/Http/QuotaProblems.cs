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

    public static Task BadIdempotencyKeyAsync(HttpContext context, string header, int maxLength) => WriteAsync(context, new ProblemDetails
    {
        Type = "urn:quotaproxy:problem:bad-idempotency-key",
        Title = "Malformed idempotency key",
        Status = StatusCodes.Status400BadRequest,
        Detail = $"Send one {header} of 1 to {maxLength} visible ASCII characters, the same on every retry of one request.",
        Extensions = { ["header"] = header },
    });

    public static Task BodyTooLargeAsync(HttpContext context, long maxBytes) => WriteAsync(context, new ProblemDetails
    {
        Type = "urn:quotaproxy:problem:body-too-large",
        Title = "Request body too large",
        Status = StatusCodes.Status413PayloadTooLarge,
        Detail = $"A metered request's body may be at most {maxBytes} bytes; nothing was charged and the vendor was not called.",
        Extensions = { ["maxBytes"] = maxBytes },
    });

    public static Task IdempotencyConflictAsync(HttpContext context, string header) => WriteAsync(context, new ProblemDetails
    {
        Type = "urn:quotaproxy:problem:idempotency-key-reused",
        Title = "Idempotency key used for another request",
        Status = StatusCodes.Status422UnprocessableEntity,
        Detail = $"This {header} was first sent with a different request (method, path, query or body). Use a new key for a new request.",
        Extensions = { ["header"] = header },
    });

    public static Task LedgerBacklogFullAsync(HttpContext context, TimeSpan retryAfter) => ServiceUnavailableAsync(
        context,
        retryAfter,
        "urn:quotaproxy:problem:ledger-backlog-full",
        "Billing ledger backlog full",
        "The billing ledger is not keeping up, so the request was not forwarded: nothing is admitted that could not be billed.");

    /// <summary>A question to <c>POST /quota/v1/decide</c> that cannot be read: every error at once.</summary>
    public static Task BadQuestionAsync(HttpContext context, IReadOnlyList<string> errors) => WriteAsync(context, new ProblemDetails
    {
        Type = "urn:quotaproxy:problem:bad-question",
        Title = "The question cannot be read",
        Status = StatusCodes.Status400BadRequest,
        Detail = string.Join(" ", errors),
        Extensions = { ["errors"] = errors },
    });

    /// <summary>A question about a method and path no route of the proxy takes.</summary>
    public static Task NoRouteAsync(HttpContext context, string method, string path) => WriteAsync(context, new ProblemDetails
    {
        Type = "urn:quotaproxy:problem:no-route",
        Title = "No route for this request",
        Status = StatusCodes.Status404NotFound,
        Detail = $"No route of the proxy takes {method} {path}.",
    });

    public static Task StoreUnavailableAsync(HttpContext context, TimeSpan retryAfter) => ServiceUnavailableAsync(
        context,
        retryAfter,
        "urn:quotaproxy:problem:store-unavailable",
        "Quota store unavailable",
        "The quota store did not answer in time, so the request was not forwarded.");

    /// <summary>A 503 with <c>Retry-After</c> in whole seconds (at least 1), said again at the end of the detail.</summary>
    private static Task ServiceUnavailableAsync(HttpContext context, TimeSpan retryAfter, string type, string title, string detail)
    {
        var seconds = (long)Math.Max(1, Math.Ceiling(retryAfter.TotalSeconds));
        context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        return WriteAsync(context, new ProblemDetails
        {
            Type = type,
            Title = title,
            Status = StatusCodes.Status503ServiceUnavailable,
            Detail = $"{detail} Retry in {seconds} s.",
        });
    }

    /// <summary>
    /// The 429 for a rejected decision: <c>Retry-After</c>, and a problem body whose type, sentence and
    /// extra fields depend on what limited the request. Every body names pool, tenant, cost, remaining,
    /// limitedBy, limitingNode and retryAfterSeconds.
    /// </summary>
    public static Task QuotaExceededAsync(HttpContext context, string pool, string tenant, long cost, in QuotaDecision decision)
    {
        var retryAfter = decision.SecondsToRetry;
        context.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
        var node = decision.LimitingNode;
        var where = node is { IsRoot: false } ? $"tenant '{node.Path}'" : $"pool '{pool}'";
        var credits = $"{cost} credit{(cost == 1 ? "" : "s")}";
        var problem = new ProblemDetails { Status = StatusCodes.Status429TooManyRequests };
        switch (decision.LimitedBy)
        {
            case QuotaLimitedBy.Rate:
                var rate = node!.Rate!;
                var retryAfterMs = (decision.RetryAfterMicros + 999) / 1000;
                (problem.Type, problem.Title) = ("urn:quotaproxy:problem:rate-limited", "Rate limit exceeded");
                problem.Detail = $"The request costs {credits} but {where} allows {rate} with a burst of {rate.Burst}; "
                    + $"it fits again in {retryAfterMs} ms. Credits in this window are not the limit: {decision.Remaining} remain.";
                problem.Extensions["rate"] = rate.ToString();
                problem.Extensions["burst"] = rate.Burst;
                problem.Extensions["retryAfterMs"] = retryAfterMs;
                break;
            case QuotaLimitedBy.Concurrency:
                (problem.Type, problem.Title) = ("urn:quotaproxy:problem:concurrency-limited", "Too many requests in flight");
                problem.Detail = $"{char.ToUpperInvariant(where[0])}{where[1..]} allows {node!.MaxInFlight} request{(node.MaxInFlight == 1 ? "" : "s")} "
                    + "in flight at once, and that many are. Retry when one of them has finished.";
                problem.Extensions["maxInFlight"] = node.MaxInFlight;
                break;
            case QuotaLimitedBy.Vendor:
                var until = DateTimeOffset.FromUnixTimeMilliseconds(decision.NowMs + ((decision.RetryAfterMicros + 999) / 1000));
                (problem.Type, problem.Title) = ("urn:quotaproxy:problem:vendor-limited", "Vendor rate limit");
                problem.Detail = $"The vendor answered 429 for pool '{pool}', so the proxy holds its requests back until "
                    + $"{until.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC, in {Describe(TimeSpan.FromSeconds(retryAfter))}. The vendor was not called.";
                problem.Extensions["closedUntil"] = Timestamp(until);
                break;
            default:
                var which = decision.LimitedBy switch
                {
                    QuotaLimitedBy.Tenant => $"{where} has reached its limit and",
                    QuotaLimitedBy.Reserved => $"what is left in pool '{pool}' is held for other tenants' guarantees and higher-priority allocations, so tenant '{tenant}'",
                    _ => $"pool '{pool}' has run dry and tenant '{tenant}'",
                };
                (problem.Type, problem.Title) = ("urn:quotaproxy:problem:quota-exceeded", "Quota exceeded");
                problem.Detail = $"The request costs {credits} but {which} can spend {decision.Remaining} more in this window. "
                    + $"The window resets at {decision.Window.End.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC, in {Describe(TimeSpan.FromSeconds(retryAfter))}.";
                problem.Extensions["limit"] = decision.Limit;
                problem.Extensions["used"] = decision.Used;
                problem.Extensions["reset"] = Timestamp(decision.Window.End);
                break;
        }

        problem.Extensions["pool"] = pool;
        problem.Extensions["tenant"] = tenant;
        problem.Extensions["cost"] = cost;
        problem.Extensions["remaining"] = decision.Remaining;
        problem.Extensions["limitedBy"] = LimitedByName(decision.LimitedBy);
        problem.Extensions["limitingNode"] = node is { IsRoot: false } ? node.Path : pool;
        problem.Extensions["retryAfterSeconds"] = retryAfter;
        return WriteAsync(context, problem);
    }

    private static string Timestamp(DateTimeOffset instant) => instant.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

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
