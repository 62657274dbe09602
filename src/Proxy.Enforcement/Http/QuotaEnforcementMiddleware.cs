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
    Admin.QuotaModelSource models,
    IQuotaStore store,
    QuotaOptions options,
    TimeProvider timeProvider,
    QuotaMetrics metrics,
    ILogger<QuotaEnforcementMiddleware> logger)
{
    // Read once at start (a reload keeps them); headers and identity come from the snapshot in force.
    private readonly TimeSpan _retryAfterWhenUnavailable = options.Store.RetryAfterWhenUnavailable;
    private readonly bool _ledger = options.Ledger.Enabled;

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

        // The configuration in force now (config file and runtime overrides), one snapshot for the whole request.
        var config = models.Config;
        var identifier = config.Identifier;
        var legacyHeaders = config.Options.Headers.Legacy;
        var idempotencyHeader = config.Options.Headers.IdempotencyKey;
        var tenantName = identifier.Identify(context);
        if (tenantName is null)
        {
            QuotaLog.Unidentified(logger, route.RouteId);
            metrics.Request(route.RouteId, quota.PoolsLabel, "", RequestOutcome.Unidentified);
            await QuotaProblems.UnidentifiedAsync(context, identifier.ApiKeyHeader);
            return;
        }

        // One debit per pool the route draws on; the caller must be a tenant of each.
        var model = config.Model;
        var debits = new QuotaDebit[quota.Pools.Count];
        for (var i = 0; i < debits.Length; i++)
        {
            if (!model.Pools.TryGetValue(quota.Pools[i], out var pool))
            {
                // Only for the instant a reload that removes a pool takes its routes away: try again.
                metrics.Request(route.RouteId, quota.PoolsLabel, "", RequestOutcome.StoreUnavailable);
                await QuotaProblems.StoreUnavailableAsync(context, _retryAfterWhenUnavailable);
                return;
            }

            if (!pool.Nodes.TryGetValue(tenantName, out var tenant))
            {
                QuotaLog.Forbidden(logger, tenantName, pool.Name, route.RouteId);
                // A name from a trusted header need not be a configured tenant: not a label value.
                metrics.Request(route.RouteId, quota.PoolsLabel, "", RequestOutcome.Forbidden);
                await QuotaProblems.ForbiddenAsync(context, tenantName, pool.Name);
                return;
            }

            debits[i] = new QuotaDebit(pool, tenant, quota.Cost);
        }

        string? idempotencyKey = null;
        if (idempotencyHeader.Length > 0 && context.Request.Headers[idempotencyHeader] is { Count: > 0 } keyValues)
        {
            idempotencyKey = keyValues.ToString();
            if (keyValues.Count > 1 || idempotencyKey.Length is 0 or > MaxIdempotencyKeyLength || idempotencyKey.Any(c => c is < '!' or > '~'))
            {
                metrics.Request(route.RouteId, quota.PoolsLabel, tenantName, RequestOutcome.InvalidRequest);
                await QuotaProblems.BadIdempotencyKeyAsync(context, idempotencyHeader, MaxIdempotencyKeyLength);
                return;
            }
        }

        var usage = _ledger || idempotencyKey is not null ? new UsageContext(route.RouteId, RequestId(context), idempotencyKey) : null;
        RouteDecision decision;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            decision = await store.DebitAsync(debits, usage, context.RequestAborted);
            metrics.StoreCall(StoreOperation.Debit, started, failed: false);
        }
        catch (QuotaStoreUnavailableException)
        {
            metrics.StoreCall(StoreOperation.Debit, started, failed: true);
            metrics.Request(route.RouteId, quota.PoolsLabel, tenantName, RequestOutcome.StoreUnavailable);
            await QuotaProblems.StoreUnavailableAsync(context, _retryAfterWhenUnavailable);
            return;
        }

        if (!decision.Admitted)
        {
            var limiting = decision.Pools[decision.LimitingIndex];
            metrics.Request(route.RouteId, quota.PoolsLabel, tenantName, RejectionOutcome(limiting.LimitedBy));
            if (limiting.LimitedBy == QuotaLimitedBy.LedgerBacklog)
            {
                QuotaLog.LedgerBacklogFull(logger, debits[decision.LimitingIndex].Pool.Name);
                await QuotaProblems.LedgerBacklogFullAsync(context, _retryAfterWhenUnavailable);
                return;
            }

            var limitingPool = debits[decision.LimitingIndex].Pool.Name;
            QuotaLog.Rejected(logger, limitingPool, tenantName, quota.Cost, limiting.LimitedBy.ToString(), limiting.Remaining);
            RateLimitHeaders.Write(context.Response.Headers, debits, decision, legacyHeaders);
            await QuotaProblems.QuotaExceededAsync(context, limitingPool, tenantName, quota.Cost, limiting);
            return;
        }

        var shadow = false;
        for (var i = 0; i < debits.Length; i++)
        {
            var (pool, poolDecision) = (debits[i].Pool, decision.Pools[i]);
            if (poolDecision.SoftLimitCrossed)
            {
                // Once per node per window: only the decision that crosses the soft limit says so.
                var node = poolDecision.SoftLimitNode!;
                QuotaLog.SoftLimitCrossed(logger, pool.Name, NodeName(node), node.SoftLimit!.Value);
                metrics.SoftLimitCrossed(pool.Name, node);
            }

            if (poolDecision.Shadow)
            {
                shadow = true;
                QuotaLog.ShadowRejected(logger, pool.Name, tenantName, quota.Cost, poolDecision.LimitedBy.ToString());
            }

            if (!poolDecision.Replayed)
            {
                metrics.Credits(pool.Name, tenantName, route.RouteId, quota.Cost);
            }

            metrics.TenantUsage(pool, debits[i].Tenant, poolDecision.Used);
            metrics.PoolUsage(pool, poolDecision.PoolUsed);
        }

        metrics.Request(route.RouteId, quota.PoolsLabel, tenantName, shadow ? RequestOutcome.ShadowRejected : RequestOutcome.Admitted);

        // Written as the response starts, so the vendor's own rate-limit headers cannot override ours.
        context.Response.OnStarting(WriteHeadersOnStarting, new AdmittedResponse(context.Response, debits, decision, legacyHeaders));
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
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            var refunded = await store.RefundAsync(debits, decision, usage, CancellationToken.None);
            metrics.StoreCall(StoreOperation.Adjust, started, failed: false);
            QuotaLog.Refunded(logger, debits[0].Cost, debits[0].Tenant.Path, routeId, status, error.ToString(), refunded);
            CountAdjustment(routeId, debits, -debits[0].Cost);
        }
        catch (QuotaStoreUnavailableException)
        {
            // Logged by the store. The credits stay spent: the quota errs toward the vendor, never over it.
            metrics.StoreCall(StoreOperation.Adjust, started, failed: true);
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

        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            await store.AdjustAsync(debits, decision, actual - reserved, Ledger.UsageKind.Adjustment, usage, CancellationToken.None);
            metrics.StoreCall(StoreOperation.Adjust, started, failed: false);
            CountAdjustment(routeId, debits, actual - reserved);
        }
        catch (QuotaStoreUnavailableException)
        {
            // Logged by the store; the reservation stands as the charge.
            metrics.StoreCall(StoreOperation.Adjust, started, failed: true);
        }
    }

    private void CountAdjustment(string routeId, QuotaDebit[] debits, long delta)
    {
        foreach (var debit in debits)
        {
            metrics.Credits(debit.Pool.Name, debit.Tenant.Path, routeId, delta);
        }
    }

    private async Task ReleaseAsync(QuotaLease lease)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            await store.ReleaseAsync(lease, CancellationToken.None);
            metrics.StoreCall(StoreOperation.Release, started, failed: false);
        }
        catch (QuotaStoreUnavailableException)
        {
            // Logged by the store; the lease expires by itself after Quota:Store:LeaseTtl.
            metrics.StoreCall(StoreOperation.Release, started, failed: true);
        }
    }

    private static RequestOutcome RejectionOutcome(QuotaLimitedBy limitedBy) => limitedBy switch
    {
        QuotaLimitedBy.Rate => RequestOutcome.RejectedRate,
        QuotaLimitedBy.Concurrency => RequestOutcome.RejectedConcurrency,
        QuotaLimitedBy.Vendor => RequestOutcome.VendorLimited,
        QuotaLimitedBy.LedgerBacklog => RequestOutcome.LedgerBacklogFull,
        _ => RequestOutcome.RejectedQuota,
    };

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
            metrics.VendorClosed(pool.Name);
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                await store.CloseAsync(pool, until.ToUnixTimeMilliseconds(), CancellationToken.None);
                metrics.StoreCall(StoreOperation.Close, started, failed: false);
            }
            catch (QuotaStoreUnavailableException)
            {
                // Logged by the store. The vendor will say 429 again, and the next close may get through.
                metrics.StoreCall(StoreOperation.Close, started, failed: true);
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

    private static string NodeName(QuotaNode node) => QuotaMetrics.NodeLabel(node);

    private sealed record AdmittedResponse(HttpResponse Response, QuotaDebit[] Debits, RouteDecision Decision, bool Legacy);
}
