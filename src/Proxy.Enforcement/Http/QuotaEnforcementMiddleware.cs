using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Identity;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Pricing;
using QuotaProxy.Enforcement.Quotas;
using Yarp.ReverseProxy.Forwarder;
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
    private readonly bool _ledger = options.Ledger.Enabled;
    private readonly string _idempotencyHeader = options.Headers.IdempotencyKey;

    private const int MaxIdempotencyKeyLength = 200;

    /// <summary>The caller's X-Request-Id when it sends one, else the proxy's own trace identifier.</summary>
    private static string RequestId(HttpContext context) =>
        context.Request.Headers["X-Request-Id"] is { Count: > 0 } id && !string.IsNullOrEmpty(id[0]) ? id[0]! : context.TraceIdentifier;

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

        // One debit per pool the route draws on; the caller must be a tenant of each.
        var debits = new QuotaDebit[quota.Pools.Count];
        for (var i = 0; i < debits.Length; i++)
        {
            var pool = model.Pools[quota.Pools[i]];
            if (!pool.Nodes.TryGetValue(tenantName, out var tenant))
            {
                QuotaLog.Forbidden(logger, tenantName, pool.Name, route.RouteId);
                await QuotaProblems.ForbiddenAsync(context, tenantName, pool.Name);
                return;
            }

            debits[i] = new QuotaDebit(pool, tenant, quota.Cost);
        }

        string? idempotencyKey = null;
        if (_idempotencyHeader.Length > 0 && context.Request.Headers[_idempotencyHeader] is { Count: > 0 } keyValues)
        {
            idempotencyKey = keyValues.ToString();
            if (keyValues.Count > 1 || idempotencyKey.Length is 0 or > MaxIdempotencyKeyLength || idempotencyKey.Any(c => c is < '!' or > '~'))
            {
                await QuotaProblems.BadIdempotencyKeyAsync(context, _idempotencyHeader, MaxIdempotencyKeyLength);
                return;
            }
        }

        var usage = _ledger || idempotencyKey is not null ? new UsageContext(route.RouteId, RequestId(context), idempotencyKey) : null;
        RouteDecision decision;
        try
        {
            decision = await store.DebitAsync(debits, usage, context.RequestAborted);
        }
        catch (QuotaStoreUnavailableException)
        {
            await QuotaProblems.StoreUnavailableAsync(context, _retryAfterWhenUnavailable);
            return;
        }

        if (!decision.Admitted)
        {
            var limiting = decision.Pools[decision.LimitingIndex];
            if (limiting.LimitedBy == QuotaLimitedBy.LedgerBacklog)
            {
                QuotaLog.LedgerBacklogFull(logger, debits[decision.LimitingIndex].Pool.Name);
                await QuotaProblems.LedgerBacklogFullAsync(context, _retryAfterWhenUnavailable);
                return;
            }

            var limitingPool = debits[decision.LimitingIndex].Pool.Name;
            QuotaLog.Rejected(logger, limitingPool, tenantName, quota.Cost, limiting.LimitedBy.ToString(), limiting.Remaining);
            RateLimitHeaders.Write(context.Response.Headers, debits, decision, _legacyHeaders);
            await QuotaProblems.QuotaExceededAsync(context, limitingPool, tenantName, quota.Cost, limiting);
            return;
        }

        for (var i = 0; i < debits.Length; i++)
        {
            var (pool, poolDecision) = (debits[i].Pool, decision.Pools[i]);
            if (poolDecision.SoftLimitCrossed)
            {
                // Once per node per window: only the decision that crosses the soft limit says so.
                var node = poolDecision.SoftLimitNode!;
                QuotaLog.SoftLimitCrossed(logger, pool.Name, NodeName(node), node.SoftLimit!.Value);
                QuotaMetrics.SoftLimitCrossed(pool.Name, NodeName(node));
            }

            if (poolDecision.Shadow)
            {
                QuotaLog.ShadowRejected(logger, pool.Name, tenantName, quota.Cost, poolDecision.LimitedBy.ToString());
            }
        }

        // Written as the response starts, so the vendor's own rate-limit headers cannot override ours.
        context.Response.OnStarting(WriteHeadersOnStarting, new AdmittedResponse(context.Response, debits, decision, _legacyHeaders));
        try
        {
            await next(context);

            if (context.Response.StatusCode == StatusCodes.Status429TooManyRequests)
            {
                await CloseAfterVendorLimitAsync(context, route.RouteId, debits, decision);
            }

            var error = context.Features.Get<IForwarderErrorFeature>()?.Error ?? ForwarderError.None;
            if (!quota.RefundOn.IsNone && quota.RefundOn.Refunds(context.Response.StatusCode, error))
            {
                await RefundAsync(route.RouteId, debits, decision, usage, context.Response.StatusCode, error);
            }
            else if (quota.CostHeader is { } costHeader)
            {
                await SettleAsync(context, route.RouteId, costHeader, debits, decision, usage);
            }
        }
        finally
        {
            // The response has ended, however it ended (success, vendor error, the client going away):
            // its MaxInFlight slots free up.
            if (decision.Lease is { } lease)
            {
                await ReleaseAsync(lease);
            }
        }
    }

    private async Task RefundAsync(string routeId, QuotaDebit[] debits, RouteDecision decision, UsageContext? usage, int status, ForwarderError error)
    {
        try
        {
            var refunded = await store.RefundAsync(debits, decision, usage, CancellationToken.None);
            QuotaLog.Refunded(logger, debits[0].Cost, debits[0].Tenant.Path, routeId, status, error.ToString(), refunded);
        }
        catch (QuotaStoreUnavailableException)
        {
            // Logged by the store. The credits stay spent: the quota errs toward the vendor, never over it.
        }
    }

    /// <summary>
    /// The route's cost was a reservation: the vendor's header says what the request really cost, and the
    /// difference is charged (even past a limit: the work is done) or given back, as an adjustment.
    /// </summary>
    private async Task SettleAsync(HttpContext context, string routeId, string costHeader, QuotaDebit[] debits, RouteDecision decision, UsageContext? usage)
    {
        var reserved = debits[0].Cost;
        var reported = context.Response.Headers[costHeader].ToString();
        if (!long.TryParse(reported, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var actual))
        {
            // No usable header: the reservation stands as the charge.
            QuotaLog.SettlementHeaderMissing(logger, routeId, costHeader, reported);
            return;
        }

        if (actual == reserved)
        {
            return;
        }

        try
        {
            await store.AdjustAsync(debits, decision, actual - reserved, Ledger.UsageKind.Adjustment, usage, CancellationToken.None);
        }
        catch (QuotaStoreUnavailableException)
        {
            // Logged by the store; the reservation stands as the charge.
        }
    }

    private async Task ReleaseAsync(QuotaLease lease)
    {
        try
        {
            await store.ReleaseAsync(lease, CancellationToken.None);
        }
        catch (QuotaStoreUnavailableException)
        {
            // Logged by the store; the lease expires by itself after Quota:Store:LeaseTtl.
        }
    }

    /// <summary>
    /// The vendor said 429: no caller of this pool gets through until its Retry-After (seconds or an HTTP
    /// date), or the window's end when it gives none. The caller at hand gets the vendor's own answer.
    /// </summary>
    private async Task CloseAfterVendorLimitAsync(HttpContext context, string routeId, QuotaDebit[] debits, RouteDecision decision)
    {
        var now = timeProvider.GetUtcNow();
        var retryAfter = VendorRetryAfter(context.Response.Headers.RetryAfter.ToString(), now);
        for (var i = 0; i < debits.Length; i++)
        {
            // The vendor does not say which of its allowances it hit: every pool of the route closes.
            var pool = debits[i].Pool;
            var until = retryAfter ?? decision.Pools[i].Window.End;
            if (until <= now)
            {
                continue;
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
        RateLimitHeaders.Write(headers, admitted.Debits, decision, admitted.Legacy);
        long overage = 0;
        for (var i = 0; i < admitted.Debits.Length; i++)
        {
            var (pool, poolDecision) = (admitted.Debits[i].Pool.Name, decision.Pools[i]);
            if (poolDecision.SoftLimitNode is { } soft)
            {
                headers.Append(QuotaHeaders.Warning, $"soft-limit; pool=\"{pool}\"; node=\"{NodeName(soft)}\"; soft-limit={soft.SoftLimit}");
            }

            if (poolDecision.Shadow)
            {
                headers.Append(QuotaHeaders.Shadow, $"would-reject; limited-by={QuotaProblems.LimitedByName(poolDecision.LimitedBy)}; node=\"{NodeName(poolDecision.LimitingNode!)}\"");
            }

            overage = Math.Max(overage, poolDecision.OverageCredits);
        }

        if (overage > 0)
        {
            headers[QuotaHeaders.Overage] = overage.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return Task.CompletedTask;
    }

    private static string NodeName(QuotaNode node) => node.IsRoot ? "(pool)" : node.Path;

    private sealed record AdmittedResponse(HttpResponse Response, QuotaDebit[] Debits, RouteDecision Decision, bool Legacy);
}
