using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Pricing;
using QuotaProxy.Enforcement.Quotas;
using Yarp.ReverseProxy.Forwarder;

namespace QuotaProxy.Enforcement.Http;

/// <summary>
/// An admitted decision, held for the life of its request (like ASP.NET Core's <c>RateLimitLease</c>): it
/// owns everything that happens because the request was admitted. When the vendor has answered it closes
/// the pools after a vendor 429, gives the credits back when the route refunds that answer, or settles the
/// cost the response reports; when disposed, however the request ended, it frees the request's
/// <c>MaxInFlight</c> slots. Store failures here never fail the request: the charge stands (the quota errs
/// toward the vendor, never over it) and an unreleased slot expires by itself.
/// </summary>
internal sealed class AdmittedRequest(
    IQuotaStore store, QuotaMetrics metrics, ILogger logger, string routeId, RouteQuota quota, QuotaDebit[] debits, RouteDecision decision, UsageContext? usage)
    : IAsyncDisposable
{
    public RouteDecision Decision => decision;

    /// <summary>
    /// The credits this request is charged so far: the route's cost (nothing where every pool took it as a
    /// replay), less a refund, give or take a settlement, as the store applied them.
    /// </summary>
    public long Charged { get; private set; } = ChargedAtAdmission(debits, decision);

    /// <summary>The route's cost, or nothing where every pool took the request as a replay.</summary>
    public static long ChargedAtAdmission(QuotaDebit[] debits, RouteDecision decision) => decision.Pools.All(pool => pool.Replayed) ? 0 : debits[0].Cost;

    private CancellationTokenSource? _renewing;
    private Task? _renewal;

    /// <summary>
    /// While the request is in flight, its MaxInFlight lease is renewed every third of its TTL, so a request
    /// longer than the TTL keeps its slot and the vendor never sees more than MaxInFlight at once. A renewal
    /// the store misses is tried again at the next tick; the lease outlives two missed ones.
    /// </summary>
    public void KeepLeaseAlive(TimeSpan leaseTtl)
    {
        if (decision.Lease is not { } lease || decision.Emergency)
        {
            return;
        }

        _renewing = new CancellationTokenSource();
        var every = leaseTtl / 3 > TimeSpan.FromMilliseconds(100) ? leaseTtl / 3 : TimeSpan.FromMilliseconds(100);
        _renewal = RenewAsync(lease, every, _renewing.Token);
    }

    private async Task RenewAsync(QuotaLease lease, TimeSpan every, CancellationToken cancellationToken)
    {
        try
        {
            using var timer = new PeriodicTimer(every);
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                try
                {
                    await store.RenewAsync(lease, cancellationToken);
                }
                catch (QuotaStoreUnavailableException)
                {
                    // Logged by the store; tried again at the next tick.
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The response has ended.
        }
    }

    /// <summary>What an admission tells operators: soft limits crossed (once per node per window), shadow rejections, credits and usage.</summary>
    /// <param name="waited">It was admitted after waiting for capacity.</param>
    /// <returns>Admitted (Waited after a wait), or ShadowRejected when a node in shadow mode would have rejected it.</returns>
    public RequestOutcome Report(string tenant, bool waited = false)
    {
        var shadow = false;
        for (var i = 0; i < debits.Length; i++)
        {
            var (pool, poolDecision) = (debits[i].Pool, decision.Pools[i]);
            if (poolDecision.SoftLimitCrossed)
            {
                var node = poolDecision.SoftLimitNode!;
                QuotaLog.SoftLimitCrossed(logger, pool.Name, QuotaMetrics.NodeLabel(node), node.SoftLimit!.Value);
                metrics.SoftLimitCrossed(pool.Name, node);
            }

            if (poolDecision.Shadow)
            {
                shadow = true;
                QuotaLog.ShadowRejected(logger, pool.Name, tenant, quota.Cost, poolDecision.LimitedBy.ToString());
            }

            if (!poolDecision.Replayed)
            {
                metrics.Credits(pool.Name, tenant, routeId, quota.Cost);
            }

            if (!decision.Emergency)
            {
                // An emergency decision knows only this replica's allowance, not the pool's usage.
                metrics.TenantUsage(pool, debits[i].Tenant, poolDecision.Used);
                metrics.PoolUsage(pool, poolDecision.PoolUsed);
            }
        }

        var outcome = shadow ? RequestOutcome.ShadowRejected : waited ? RequestOutcome.Waited : RequestOutcome.Admitted;
        metrics.Request(routeId, quota.PoolsLabel, tenant, outcome);
        return outcome;
    }

    /// <summary>The vendor has answered (or the forwarder gave up): close, refund or settle as the route says.</summary>
    public async Task ResponseEndedAsync(HttpContext context)
    {
        if (decision.Emergency)
        {
            // Admitted while the store was away and charged from the journal later: it has nothing to refund,
            // settle or close against yet (a refund landing before the journaled charge would be clamped at 0).
            return;
        }

        var status = context.Response.StatusCode;
        if (status == StatusCodes.Status429TooManyRequests)
        {
            await CloseAfterVendorLimitAsync(context.Response.Headers.RetryAfter.ToString());
        }

        if (decision.Pools.Any(pool => pool.Replayed))
        {
            // A replay was charged nothing (in that pool): nothing to refund or settle, or its first request's
            // credits would be given back a second time.
            return;
        }

        var error = context.Features.Get<IForwarderErrorFeature>()?.Error ?? ForwarderError.None;
        if (!quota.RefundOn.IsNone && quota.RefundOn.Refunds(status, error))
        {
            await RefundAsync(status, error);
        }
        else if (quota.CostHeader is { } costHeader)
        {
            await SettleAsync(costHeader, context.Response.Headers[costHeader].ToString());
        }
    }

    /// <summary>The response has ended, however it ended (success, vendor error, the client going away): its MaxInFlight slots free up.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_renewing is not null)
        {
            // Stopped before the release: a renewal never outlives it (and renew.lua never brings a lease back).
            await _renewing.CancelAsync();
            await _renewal!;
            _renewing.Dispose();
        }

        if (decision.Lease is not { } lease)
        {
            return;
        }

        try
        {
            await store.ReleaseAsync(lease, CancellationToken.None);
        }
        catch (QuotaStoreUnavailableException)
        {
            // Logged by the store; the lease expires by itself after Quota:Store:LeaseTtl.
        }
    }

    /// <summary>The request will not be forwarded (its caller left): the whole charge goes back, as a refund.</summary>
    public Task GiveBackAsync() =>
        decision.Emergency || decision.Pools.All(pool => pool.Replayed) ? Task.CompletedTask : RefundAsync(StatusCodes.Status499ClientClosedRequest, ForwarderError.RequestCanceled);

    private async Task RefundAsync(int status, ForwarderError error)
    {
        try
        {
            var refunded = await store.RefundAsync(debits, decision, usage, CancellationToken.None);
            QuotaLog.Refunded(logger, debits[0].Cost, debits[0].Tenant.Path, routeId, status, error.ToString(), refunded);
            CountAdjustment(-debits[0].Cost);
            Charged -= debits[0].Cost;
        }
        catch (QuotaStoreUnavailableException)
        {
            // Logged by the store. The credits stay spent: the quota errs toward the vendor, never over it.
        }
    }

    /// <summary>
    /// The route's cost was a reservation of its <c>Quota.MaxCost</c>: the vendor's header says what the
    /// request really cost, and the difference is given back as an adjustment. A header above the maximum is
    /// capped to it (and logged), so a settlement never charges more than was reserved: never past a limit,
    /// never into what another tenant's guarantee holds.
    /// </summary>
    private async Task SettleAsync(string costHeader, string reported)
    {
        var reserved = debits[0].Cost;
        if (!long.TryParse(reported, NumberStyles.None, CultureInfo.InvariantCulture, out var actual))
        {
            // No usable header: the reservation stands as the charge.
            QuotaLog.SettlementHeaderMissing(logger, routeId, costHeader, reported);
            return;
        }

        if (actual > reserved)
        {
            // The reservation is the route's Quota.MaxCost: a header above it is not believed past it.
            QuotaLog.SettlementCapped(logger, routeId, costHeader, actual, reserved);
            actual = reserved;
        }

        if (actual == reserved)
        {
            return;
        }

        try
        {
            await store.AdjustAsync(debits, decision, actual - reserved, UsageKind.Adjustment, usage, CancellationToken.None);
            CountAdjustment(actual - reserved);
            Charged += actual - reserved;
        }
        catch (QuotaStoreUnavailableException)
        {
            // Logged by the store; the reservation stands as the charge.
        }
    }

    private void CountAdjustment(long delta)
    {
        foreach (var debit in debits)
        {
            metrics.Credits(debit.Pool.Name, debit.Tenant.Path, routeId, delta);
        }
    }

    /// <summary>
    /// The vendor said 429: no caller of these pools gets through until its Retry-After (seconds or an HTTP
    /// date), or the window's end when it gives none. The caller at hand gets the vendor's own answer.
    /// </summary>
    private async Task CloseAfterVendorLimitAsync(string retryAfterHeader)
    {
        for (var i = 0; i < debits.Length; i++)
        {
            // The vendor does not say which of its allowances it hit: every pool of the route closes.
            var pool = debits[i].Pool;
            var now = DateTimeOffset.FromUnixTimeMilliseconds(decision.Pools[i].NowMs);
            var until = VendorRetryAfter(retryAfterHeader, now) ?? DateTimeOffset.FromUnixTimeMilliseconds(decision.Pools[i].Window.EndMs);
            if (until > now + pool.MaxClosure)
            {
                // A Retry-After of hours or of the year 9999 would take the pool away until an operator noticed.
                QuotaLog.VendorClosureCapped(logger, pool.Name, until, pool.MaxClosure.TotalSeconds);
                until = now + pool.MaxClosure;
            }

            if (until <= now)
            {
                continue;
            }

            QuotaLog.VendorLimited(logger, routeId, pool.Name, until);
            metrics.VendorClosed(pool.Name);
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
        if (long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
        {
            return now.AddSeconds(Math.Min(seconds, TimeSpan.FromDays(366).TotalSeconds));
        }

        return DateTimeOffset.TryParseExact(value, "r", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var date)
            ? date
            : null;
    }
}
