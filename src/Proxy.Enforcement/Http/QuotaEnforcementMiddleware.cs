using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Pricing;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Http;

/// <summary>
/// The quota step in YARP's pipeline: route → identity → price → decide → forward or answer. An admitted
/// request is forwarded holding its <see cref="AdmittedRequest"/>, which does what the response calls
/// for; any other request is answered here (401, 403, 400, 429, 503) without calling the vendor.
/// </summary>
internal sealed class QuotaEnforcementMiddleware(
    RequestDelegate next,
    RouteQuotaCatalog routes,
    LiveConfiguration live,
    IQuotaStore store,
    QuotaMetrics metrics,
    ILogger<QuotaEnforcementMiddleware> logger,
    RuntimeApiKeys runtimeKeys,
    UsageForecast forecast,
    CapacityWaiter waiter)
{
    private readonly Func<string, string?> _runtimeTenantByDigest = runtimeKeys.TenantOf;

    public async Task InvokeAsync(HttpContext context)
    {
        var route = context.GetReverseProxyFeature().Route.Config;
        if (routes.For(route) is not { } quota)
        {
            await next(context);
            return;
        }

        var started = Stopwatch.GetTimestamp();
        var record = context.Features.Get<RequestRecord>();
        // Every metered answer says what it cost: nothing, unless it is admitted (which writes its charge as the response starts).
        context.Response.Headers[QuotaHeaders.Charged] = NothingCharged;
        // The configuration in force now, one snapshot for the whole request.
        var config = live.Current;
        var options = config.Options;
        if (!HoldToRequestLimits(context, options.Requests))
        {
            Count(record, route.RouteId, quota, "", RequestOutcome.InvalidRequest);
            await QuotaProblems.BodyTooLargeAsync(context, options.Requests.MaxBodyBytes);
            return;
        }

        string? tenant;
        using (var identify = QuotaTracing.Source.StartActivity("quota.identify"))
        {
            tenant = config.Identifier.Identify(context, _runtimeTenantByDigest);
            identify?.SetTag("quota.route", route.RouteId).SetTag("quota.tenant", tenant);
        }

        if (tenant is null)
        {
            QuotaLog.Unidentified(logger, route.RouteId);
            Count(record, route.RouteId, quota, "", RequestOutcome.Unidentified);
            await QuotaProblems.UnidentifiedAsync(context, config.Identifier.ApiKeyHeader);
            return;
        }

        if (RoutePrice.Debits(quota, config.Model, tenant, out var missingPool, out var notInPool) is not { } debits)
        {
            if (missingPool is not null)
            {
                // Only for the instant a reload that removes a pool takes its routes away: try again.
                Count(record, route.RouteId, quota, "", RequestOutcome.StoreUnavailable);
                await QuotaProblems.StoreUnavailableAsync(context, options.Store.RetryAfterWhenUnavailable);
                return;
            }

            QuotaLog.Forbidden(logger, tenant, notInPool!, route.RouteId);
            // A name from a trusted header need not be a configured tenant: not a label value.
            Count(record, route.RouteId, quota, "", RequestOutcome.Forbidden);
            await QuotaProblems.ForbiddenAsync(context, tenant, notInPool!);
            return;
        }

        if (!IdempotencyKey.TryRead(context.Request.Headers, options.Headers.IdempotencyKey, out var idempotencyKey))
        {
            Count(record, route.RouteId, quota, tenant, RequestOutcome.InvalidRequest);
            await QuotaProblems.BadIdempotencyKeyAsync(context, options.Headers.IdempotencyKey, IdempotencyKey.MaxLength);
            return;
        }

        // A reused key is free only where the vendor does not do (or bill) the work again; elsewhere it is charged.
        var claim = idempotencyKey is not null && quota.ReplaysAreFree
            ? new IdempotencyClaim(idempotencyKey, await FingerprintAsync(context, tenant, route.RouteId), quota.MaxReplays)
            : null;
        var usage = options.Ledger.Enabled || claim is not null ? new UsageContext(route.RouteId, RequestId(context), claim) : null;
        RouteDecision decision;
        using (var decide = QuotaTracing.Source.StartActivity("quota.decide"))
        {
            decide?.SetTag("quota.route", route.RouteId).SetTag("quota.tenant", tenant).SetTag("quota.pool", quota.PoolsLabel).SetTag("quota.cost", quota.Cost);
            try
            {
                decision = await store.DebitAsync(debits, usage, context.RequestAborted);
            }
            catch (QuotaStoreUnavailableException)
            {
                Decided(record, route.RouteId, started, decide, RequestOutcome.StoreUnavailable);
                Count(record, route.RouteId, quota, tenant, RequestOutcome.StoreUnavailable);
                await QuotaProblems.StoreUnavailableAsync(context, options.Store.RetryAfterWhenUnavailable);
                return;
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                // The caller left while the store decided: nobody to answer, and a decision that lands later is given back.
                Decided(record, route.RouteId, started, decide, RequestOutcome.ClientClosed);
                Count(record, route.RouteId, quota, tenant, RequestOutcome.ClientClosed);
                return;
            }

            var limitedBy = decision.Admitted ? (QuotaLimitedBy?)null : decision.Pools[decision.LimitingIndex].LimitedBy;
            decide?.SetTag("quota.admitted", decision.Admitted).SetTag("quota.limited_by", limitedBy is { } by ? QuotaProblems.LimitedByName(by) : null);
            Decided(record, route.RouteId, started, decide, limitedBy is { } limit ? RejectionOutcome(limit) : RequestOutcome.Admitted);
        }

        // Refused for a reason that frees itself within the pool's Wait: wait for the capacity instead.
        var waited = false;
        if (!decision.Admitted && waiter.TryWait(debits, usage, decision, options, context.RequestAborted) is { } waiting)
        {
            try
            {
                decision = await waiting;
                waited = decision.Admitted;
            }
            catch (QuotaStoreUnavailableException)
            {
                Count(record, route.RouteId, quota, tenant, RequestOutcome.StoreUnavailable);
                await QuotaProblems.StoreUnavailableAsync(context, options.Store.RetryAfterWhenUnavailable);
                return;
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                Count(record, route.RouteId, quota, tenant, RequestOutcome.ClientClosed);
                return;
            }
        }

        if (!decision.Admitted)
        {
            await RejectAsync(context, record, route.RouteId, quota, tenant, debits, decision, options);
            return;
        }

        await using var admitted = new AdmittedRequest(store, metrics, logger, route.RouteId, quota, debits, decision, usage);
        if (context.RequestAborted.IsCancellationRequested)
        {
            // The caller left while the store decided: the vendor is not called, so the credits go back.
            await admitted.GiveBackAsync();
            Count(record, route.RouteId, quota, tenant, RequestOutcome.ClientClosed);
            Charged(record, admitted);
            return;
        }

        var outcome = admitted.Report(tenant, waited);
        Remember(record, tenant, outcome);
        admitted.KeepLeaseAlive(options.Store.LeaseTtl);
        AdmittedHeaders.WriteOnStarting(context.Response, debits, decision, options.Headers.Legacy, forecast);
        await next(context);
        await admitted.ResponseEndedAsync(context);
        Charged(record, admitted);
    }

    private static readonly Microsoft.Extensions.Primitives.StringValues NothingCharged = "0";

    /// <summary>Counts what a request came to, and keeps it in its record for the access log.</summary>
    private void Count(RequestRecord? record, string routeId, RouteQuota quota, string tenant, RequestOutcome outcome)
    {
        metrics.Request(routeId, quota.PoolsLabel, tenant, outcome);
        Remember(record, tenant, outcome);
    }

    private static void Remember(RequestRecord? record, string tenant, RequestOutcome outcome)
    {
        if (record is not null)
        {
            record.Tenant = tenant.Length > 0 ? tenant : null;
            record.Outcome = outcome;
        }
    }

    private static void Charged(RequestRecord? record, AdmittedRequest admitted)
    {
        if (record is not null)
        {
            record.Charged = admitted.Charged;
        }
    }

    /// <summary>The quota step has its answer: its time (identity, price, the store) into the histogram and the record.</summary>
    private void Decided(RequestRecord? record, string routeId, long started, Activity? span, RequestOutcome outcome)
    {
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        metrics.Decision(routeId, seconds);
        span?.SetTag("quota.outcome", QuotaMetrics.OutcomeLabels[outcome]);
        if (record is not null)
        {
            record.DecisionSeconds = seconds;
            record.Charged = 0;
        }
    }

    private async Task RejectAsync(HttpContext context, RequestRecord? record, string routeId, RouteQuota quota, string tenant, QuotaDebit[] debits, RouteDecision decision, QuotaOptions options)
    {
        var limiting = decision.Pools[decision.LimitingIndex];
        var limitingPool = debits[decision.LimitingIndex].Pool.Name;
        Count(record, routeId, quota, tenant, RejectionOutcome(limiting.LimitedBy));
        if (limiting.LimitedBy == QuotaLimitedBy.IdempotencyConflict)
        {
            await QuotaProblems.IdempotencyConflictAsync(context, options.Headers.IdempotencyKey);
            return;
        }

        if (limiting.LimitedBy == QuotaLimitedBy.LedgerBacklog)
        {
            QuotaLog.LedgerBacklogFull(logger, limitingPool);
            await QuotaProblems.LedgerBacklogFullAsync(context, options.Store.RetryAfterWhenUnavailable);
            return;
        }

        QuotaLog.Rejected(logger, limitingPool, tenant, quota.Cost, limiting.LimitedBy.ToString(), limiting.Remaining);
        RateLimitHeaders.Write(context.Response.Headers, debits, decision, options.Headers.Legacy);
        await QuotaProblems.QuotaExceededAsync(context, limitingPool, tenant, quota.Cost, limiting);
    }

    private static RequestOutcome RejectionOutcome(QuotaLimitedBy limitedBy) => limitedBy switch
    {
        QuotaLimitedBy.Rate => RequestOutcome.RejectedRate,
        QuotaLimitedBy.Concurrency => RequestOutcome.RejectedConcurrency,
        QuotaLimitedBy.Vendor => RequestOutcome.VendorLimited,
        QuotaLimitedBy.LedgerBacklog => RequestOutcome.LedgerBacklogFull,
        QuotaLimitedBy.IdempotencyConflict => RequestOutcome.InvalidRequest,
        _ => RequestOutcome.RejectedQuota,
    };

    /// <summary>
    /// What binds an idempotency key to its first request: tenant, route, method, path and query, and the
    /// body's SHA-256 (the body is buffered to read it, and forwarded from the start).
    /// </summary>
    private static async Task<long> FingerprintAsync(HttpContext context, string tenant, string routeId)
    {
        var request = context.Request;
        var digest = Array.Empty<byte>();
        if (request.ContentLength is > 0 || (request.ContentLength is null && request.Headers.TransferEncoding.Count > 0))
        {
            request.EnableBuffering();
            digest = await System.Security.Cryptography.SHA256.HashDataAsync(request.Body, context.RequestAborted);
            request.Body.Position = 0;
        }

        return IdempotencyClaim.FingerprintOf(tenant, routeId, request.Method, request.Path.Value + request.QueryString.Value, digest);
    }

    /// <summary>
    /// A metered request's body is held to the limits before anything is charged: a declared length above
    /// the maximum is refused (false: answer 413); a body that grows past it, or arrives slower than the
    /// minimum rate, is cut by the server as it is read.
    /// </summary>
    private static bool HoldToRequestLimits(HttpContext context, RequestOptions limits)
    {
        if (context.Request.ContentLength > limits.MaxBodyBytes)
        {
            return false;
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = limits.MaxBodyBytes;
        }

        if (context.Features.Get<IHttpMinRequestBodyDataRateFeature>() is { } rate)
        {
            rate.MinDataRate = MinUploadRate(limits);
        }

        return true;
    }

    /// <summary>The minimum upload rate of the options in force, made once per configuration rather than once per request.</summary>
    private static MinDataRate MinUploadRate(RequestOptions limits)
    {
        var cached = _minUploadRate;
        if (cached?.Limits != limits)
        {
            cached = new CachedRate(limits, new MinDataRate(limits.MinUploadBytesPerSecond, limits.MinUploadGracePeriod));
            _minUploadRate = cached;
        }

        return cached.Rate;
    }

    private sealed record CachedRate(RequestOptions Limits, MinDataRate Rate);

    private static CachedRate? _minUploadRate;

    /// <summary>The longest X-Request-Id the ledger stores as the caller sent it.</summary>
    internal const int MaxRequestIdLength = 128;

    /// <summary>
    /// The caller's X-Request-Id when it sends one of 1 to <see cref="MaxRequestIdLength"/> visible ASCII
    /// characters, else the proxy's own trace identifier: the ledger stores what it is given, and a caller
    /// must not be able to put megabytes or control characters in it.
    /// </summary>
    internal static string RequestId(HttpContext context) =>
        context.Request.Headers["X-Request-Id"] is { Count: 1 } id && id[0] is { Length: > 0 and <= MaxRequestIdLength } value && !value.Any(c => c is < '!' or > '~')
            ? value
            : context.TraceIdentifier;
}
