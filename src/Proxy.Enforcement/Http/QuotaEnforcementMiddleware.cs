using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Identity;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Pricing;
using QuotaProxy.Enforcement.Quotas;
using Yarp.ReverseProxy.Model;

namespace QuotaProxy.Enforcement.Http;

/// <summary>
/// The quota step in YARP's pipeline: identify the caller, price the request, ask the store for one atomic
/// decision, then forward with rate-limit headers or answer 401/403/429/503 without calling the vendor.
/// A 429 from the vendor closes the pool until the vendor's Retry-After (or the window's end).
/// </summary>
internal sealed class QuotaEnforcementMiddleware(
    RequestDelegate next,
    RouteQuotaCatalog routes,
    CallerIdentifier identifier,
    QuotaModel model,
    IQuotaStore store,
    QuotaOptions options,
    TimeProvider timeProvider,
    ILogger<QuotaEnforcementMiddleware> logger)
{
    private readonly bool _legacyHeaders = options.Headers.Legacy;
    private readonly TimeSpan _retryAfterWhenUnavailable = options.Store.RetryAfterWhenUnavailable;

    public async Task InvokeAsync(HttpContext context)
    {
        var route = context.GetReverseProxyFeature().Route.Config;
        var quota = routes.For(route);
        if (quota is null)
        {
            await next(context);
            return;
        }

        var tenantName = identifier.Identify(context);
        if (tenantName is null)
        {
            QuotaLog.Unidentified(logger, route.RouteId);
            await QuotaProblems.UnidentifiedAsync(context, identifier.ApiKeyHeader);
            return;
        }

        var pool = model.Pools[quota.Pool];
        if (!pool.Nodes.TryGetValue(tenantName, out var tenant))
        {
            QuotaLog.Forbidden(logger, tenantName, pool.Name, route.RouteId);
            await QuotaProblems.ForbiddenAsync(context, tenantName, pool.Name);
            return;
        }

        QuotaDecision decision;
        try
        {
            decision = await store.DebitAsync(new QuotaDebit(pool, tenant, quota.Cost), context.RequestAborted);
        }
        catch (QuotaStoreUnavailableException)
        {
            await QuotaProblems.StoreUnavailableAsync(context, _retryAfterWhenUnavailable);
            return;
        }

        if (!decision.Admitted)
        {
            QuotaLog.Rejected(logger, pool.Name, tenant.Path, quota.Cost, decision.LimitedBy.ToString(), decision.Remaining);
            RateLimitHeaders.Write(context.Response.Headers, pool.Name, decision, _legacyHeaders);
            await QuotaProblems.QuotaExceededAsync(context, pool.Name, tenant.Path, quota.Cost, decision);
            return;
        }

        if (decision.SoftLimitCrossed)
        {
            // Once per node per window: only the decision that crosses the soft limit says so.
            QuotaLog.SoftLimitCrossed(logger, pool.Name, NodeName(decision.SoftLimitNode!), decision.SoftLimitNode!.SoftLimit!.Value);
            QuotaMetrics.SoftLimitCrossed(pool.Name, NodeName(decision.SoftLimitNode!));
        }

        if (decision.Shadow)
        {
            QuotaLog.ShadowRejected(logger, pool.Name, tenant.Path, quota.Cost, decision.LimitedBy.ToString());
        }

        // Written as the response starts, so the vendor's own rate-limit headers cannot override ours.
        context.Response.OnStarting(WriteHeadersOnStarting, new AdmittedResponse(context.Response, pool.Name, decision, _legacyHeaders));
        await next(context);

        if (context.Response.StatusCode == StatusCodes.Status429TooManyRequests)
        {
            await CloseAfterVendorLimitAsync(context, route.RouteId, pool, decision);
        }
    }

    /// <summary>
    /// The vendor said 429: no caller of this pool gets through until its Retry-After (seconds or an HTTP
    /// date), or the window's end when it gives none. The caller at hand gets the vendor's own answer.
    /// </summary>
    private async Task CloseAfterVendorLimitAsync(HttpContext context, string routeId, PoolDefinition pool, QuotaDecision decision)
    {
        var now = timeProvider.GetUtcNow();
        var until = VendorRetryAfter(context.Response.Headers.RetryAfter.ToString(), now) ?? decision.Window.End;
        if (until <= now)
        {
            return;
        }

        QuotaLog.VendorLimited(logger, routeId, pool.Name, until);
        QuotaMetrics.VendorClosed(pool.Name);
        try
        {
            await store.CloseAsync(pool, until.ToUnixTimeMilliseconds(), CancellationToken.None);
        }
        catch (QuotaStoreUnavailableException)
        {
            // Logged by the store. The vendor will say 429 again, and the next close may get through.
        }
    }

    internal static DateTimeOffset? VendorRetryAfter(string value, DateTimeOffset now)
    {
        if (long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var seconds))
        {
            return now.AddSeconds(Math.Min(seconds, TimeSpan.FromDays(366).TotalSeconds));
        }

        return DateTimeOffset.TryParseExact(value, "r", System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var date)
            ? date
            : null;
    }

    private static Task WriteHeadersOnStarting(object state)
    {
        var admitted = (AdmittedResponse)state;
        var headers = admitted.Response.Headers;
        var decision = admitted.Decision;
        RateLimitHeaders.Write(headers, admitted.Pool, decision, admitted.Legacy);
        if (decision.SoftLimitNode is { } soft)
        {
            headers[QuotaHeaders.Warning] = $"soft-limit; pool=\"{admitted.Pool}\"; node=\"{NodeName(soft)}\"; soft-limit={soft.SoftLimit}";
        }

        if (decision.OverageCredits > 0)
        {
            headers[QuotaHeaders.Overage] = decision.OverageCredits.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (decision.Shadow)
        {
            headers[QuotaHeaders.Shadow] = $"would-reject; limited-by={QuotaProblems.LimitedByName(decision.LimitedBy)}; node=\"{NodeName(decision.LimitingNode!)}\"";
        }

        return Task.CompletedTask;
    }

    private static string NodeName(QuotaNode node) => node.IsRoot ? "(pool)" : node.Path;

    private sealed record AdmittedResponse(HttpResponse Response, string Pool, QuotaDecision Decision, bool Legacy);
}
