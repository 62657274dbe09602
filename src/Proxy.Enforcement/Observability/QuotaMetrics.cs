using System.Collections.Concurrent;
using Prometheus;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Observability;

/// <summary>
/// Every Prometheus metric of the proxy, in one registry per host (tests read their own proxy's). Names
/// are <c>quota_proxy_&lt;what&gt;_&lt;unit&gt;</c>; labels are bounded by the config: route ids, pool
/// names, configured tenant paths and fixed outcome values. Never an API key, a user or a request id.
/// </summary>
internal sealed class QuotaMetrics
{
    public static readonly IReadOnlyDictionary<RequestOutcome, string> OutcomeLabels = new Dictionary<RequestOutcome, string>
    {
        [RequestOutcome.Admitted] = "admitted",
        [RequestOutcome.RejectedQuota] = "rejected_quota",
        [RequestOutcome.RejectedRate] = "rejected_rate",
        [RequestOutcome.RejectedConcurrency] = "rejected_concurrency",
        [RequestOutcome.ShadowRejected] = "shadow_rejected",
        [RequestOutcome.Unidentified] = "unidentified",
        [RequestOutcome.Forbidden] = "forbidden",
        [RequestOutcome.InvalidRequest] = "invalid_request",
        [RequestOutcome.StoreUnavailable] = "store_unavailable",
        [RequestOutcome.VendorLimited] = "vendor_limited",
        [RequestOutcome.LedgerBacklogFull] = "ledger_backlog_full",
        [RequestOutcome.ClientClosed] = "client_closed",
        [RequestOutcome.Waited] = "waited",
    };

    private readonly Counter _requests;
    private readonly Counter _creditsDebited;
    private readonly Counter _creditsRefunded;
    private readonly Gauge _poolUsed;
    private readonly Gauge _poolLimit;
    private readonly Gauge _tenantUsed;
    private readonly Gauge _tenantLimit;
    private readonly Histogram _storeDuration;
    private readonly Counter _storeErrors;
    private readonly Gauge _ledgerBacklog;
    private readonly Histogram _ledgerFlushLag;
    private readonly Counter _ledgerFlushErrors;
    private readonly Counter _ledgerEventsWritten;
    private readonly Counter _softLimitCrossings;
    private readonly Counter _vendorClosures;
    private readonly Counter _configReloads;
    private readonly Gauge _storeBreakerOpen;
    private readonly Counter _emergencyAdmissions;
    private readonly Gauge _emergencyJournalPending;
    private readonly Counter _abandonedDecisions;
    private readonly Counter _adminAuthFailures;
    private readonly Counter _storeBaselines;
    private readonly Counter _storeAudits;
    private readonly Histogram _decisionDuration;
    private readonly Histogram _requestDuration;
    private readonly Histogram _upstreamDuration;
    private readonly Counter _accessLogDropped;
    private readonly Gauge _burnRate;
    private readonly Gauge _projectedExhaustion;
    private readonly Counter _notifications;
    private readonly Gauge _waiting;
    private readonly Histogram _waitDuration;
    private readonly Counter _leaseCredits;
    private readonly Counter _leasesTaken;
    private readonly Gauge _leasedCredits;

    /// <summary>What became of a decision the proxy stopped waiting for (the <c>outcome</c> of <c>quota_proxy_store_abandoned_decisions_total</c>).</summary>
    public static readonly IReadOnlyList<string> AbandonedOutcomes = ["expired", "not_admitted", "refunded", "refund_failed", "unanswered"];

    // The request path's children, found by their label values without prometheus-net's own lookup (a
    // reader lock and a hash over a label sequence each, several times a request; docs/benchmarks.md has
    // the cost). Children are never removed from these collectors, so one found stays the one exported.
    private readonly ConcurrentDictionary<(string Route, string Pools, string Tenant, RequestOutcome Outcome), Counter.Child> _requestChildren = new();
    private readonly ConcurrentDictionary<(string Pool, string Tenant, string Route), Counter.Child> _debitedChildren = new();
    private readonly ConcurrentDictionary<string, (Gauge.Child Used, Gauge.Child Limit)> _poolChildren = new();
    private readonly ConcurrentDictionary<(string Pool, string Tenant), (Gauge.Child Used, Gauge.Child Limit)> _tenantChildren = new();
    private readonly ConcurrentDictionary<string, (Histogram.Child Duration, Counter.Child Errors)> _storeChildren = new();
    private readonly ConcurrentDictionary<string, Histogram.Child> _decisionChildren = new();
    private readonly ConcurrentDictionary<(string Route, int Status), Histogram.Child> _requestDurationChildren = new();
    private readonly ConcurrentDictionary<(string Route, int Status), Histogram.Child> _upstreamChildren = new();

    /// <summary>The <c>status</c> of <c>quota_proxy_upstream_duration_seconds</c> when the vendor gave no answer (refused, reset, timed out).</summary>
    public const int NoUpstreamAnswer = 0;

    public QuotaMetrics(CollectorRegistry registry)
    {
        Registry = registry;
        var factory = Metrics.WithCustomRegistry(registry);
        // No exemplars: the proxy exports no trace ids, and reading the trace context on every update is
        // not free on the request path.
        factory.ExemplarBehavior = new ExemplarBehavior { DefaultExemplarProvider = static (_, _) => Exemplar.None };
        _requests = factory.CreateCounter(
            "quota_proxy_requests_total", "Metered requests by route, pool(s), tenant and outcome.", ["route", "pool", "tenant", "outcome"]);
        _creditsDebited = factory.CreateCounter(
            "quota_proxy_credits_debited_total", "Credits charged: admissions, and settlements that charged more.", ["pool", "tenant", "route"]);
        _creditsRefunded = factory.CreateCounter(
            "quota_proxy_credits_refunded_total", "Credits given back: refunds, and settlements that charged less.", ["pool", "tenant", "route"]);
        _poolUsed = factory.CreateGauge("quota_proxy_pool_credits_used", "Credits used in the pool's current window, as the store last said.", ["pool"]);
        _poolLimit = factory.CreateGauge("quota_proxy_pool_credits_limit", "The pool's Limit per window.", ["pool"]);
        _tenantUsed = factory.CreateGauge(
            "quota_proxy_tenant_credits_used", "Credits used by a tenant (with everything below it) in the current window, as the store last said.", ["pool", "tenant"]);
        _tenantLimit = factory.CreateGauge("quota_proxy_tenant_credits_limit", "The tenant's effective limit: the smallest Limit on its path.", ["pool", "tenant"]);
        _storeDuration = factory.CreateHistogram(
            "quota_proxy_store_duration_seconds",
            "Store calls by operation (debit, adjust, release, close, read), failed ones included.",
            new HistogramConfiguration
            {
                LabelNames = ["operation"],
                Buckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
            });
        _storeErrors = factory.CreateCounter("quota_proxy_store_errors_total", "Store calls that failed or timed out, by operation.", ["operation"]);
        _ledgerBacklog = factory.CreateGauge("quota_proxy_ledger_backlog_events", "Usage events waiting in Redis for the ledger, per pool.", ["pool"]);
        _ledgerFlushLag = factory.CreateHistogram(
            "quota_proxy_ledger_flush_lag_seconds",
            "From a usage event's time to the commit of the batch that wrote it to PostgreSQL.",
            new HistogramConfiguration { Buckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] });
        _ledgerFlushErrors = factory.CreateCounter("quota_proxy_ledger_flush_errors_total", "Ledger flush passes that failed; their events wait in Redis.");
        _ledgerEventsWritten = factory.CreateCounter("quota_proxy_ledger_events_written_total", "Usage events this process wrote to PostgreSQL.", ["pool"]);
        _softLimitCrossings = factory.CreateCounter(
            "quota_proxy_soft_limit_crossings_total", "Nodes that went above their SoftLimit, once per node per window.", ["pool", "node"]);
        _vendorClosures = factory.CreateCounter("quota_proxy_vendor_closures_total", "Vendor 429 answers that closed a pool.", ["pool"]);
        _configReloads = factory.CreateCounter("quota_proxy_config_reloads_total", "Configuration reloads after an edit, by result: applied or rejected.", ["result"]);
        _storeBreakerOpen = factory.CreateGauge(
            "quota_proxy_store_breaker_open",
            "1 while the store's circuit for a pool's keys is open (the store is not called for them), else 0; by the pool whose name tags the keys.",
            ["pool"]);
        _emergencyAdmissions = factory.CreateCounter(
            "quota_proxy_emergency_credits_total",
            "Credits admitted from a pool's emergency allowance while the store was unreachable (outage policy AllowBounded).",
            ["pool"]);
        _emergencyJournalPending = factory.CreateGauge(
            "quota_proxy_emergency_journal_pending", "Emergency admissions journaled on this replica's disk that the store has not been charged with yet.");
        _adminAuthFailures = factory.CreateCounter(
            "quota_proxy_admin_auth_failures_total",
            "Admin API requests refused for a missing or unknown admin key.",
            ["reason"]);
        _adminAuthFailures.WithLabels("missing");
        _adminAuthFailures.WithLabels("unknown");
        _abandonedDecisions = factory.CreateCounter(
            "quota_proxy_store_abandoned_decisions_total",
            "Decisions the proxy stopped waiting for (and answered 503), by what became of them in the store.",
            ["outcome"]);
        foreach (var outcome in AbandonedOutcomes)
        {
            _abandonedDecisions.WithLabels(outcome);
        }

        _storeBaselines = factory.CreateCounter(
            "quota_proxy_store_baselines_total",
            "Baselines this replica set for a pool's counters in Redis, by outcome: kept (Redis held the window), restored (from the ledger, after Redis lost its data), raised (Redis held the window but had lost writes the ledger billed) or empty (nothing to restore).",
            ["pool", "outcome"]);
        _storeAudits = factory.CreateCounter(
            "quota_proxy_store_audits_total",
            "Checks of a pool's counters in Redis against the ledger (at start, after a reconnection or a failover), by outcome: consistent, lost (Redis had lost writes the ledger billed; raised back) unread (the stream was too long to read, or the window was moving on) or failed (the ledger did not answer: the counters go on as they are).",
            ["pool", "outcome"]);
        (_decisionDuration, _requestDuration, _upstreamDuration, _accessLogDropped) = CreateRequestTimings(factory);
        _burnRate = factory.CreateGauge(
            "quota_proxy_burn_rate_credits_per_second",
            "Each node's burn rate in credits a second, from the store's counters at each usage read: the average since this replica's first read of the window for its first 5 minutes, then an exponentially weighted moving average (5 min). tenant is (pool) for the pool itself.",
            ["pool", "tenant"]);
        _projectedExhaustion = factory.CreateGauge(
            "quota_proxy_projected_exhaustion_seconds",
            "Seconds until the node runs out at its burn rate, when that is before its window ends; +Inf when it is not forecast to run out in this window. tenant is (pool) for the pool itself.",
            ["pool", "tenant"]);
        _notifications = factory.CreateCounter(
            "quota_proxy_notifications_total",
            "Threshold notifications by webhook and outcome: delivered, attempt_failed (an attempt the receiver did not take: a non-2xx answer or none), given_up (after MaxAttempts).",
            ["webhook", "outcome"]);
        _leaseCredits = factory.CreateCounter(
            "quota_proxy_lease_credits_total",
            "Credits of credit leases, by pool and what became of them: granted (debited as a block), spent (by admitted requests; billed), returned (unspent, given back to the pool), forfeited (unspent when a reset or a store failover voided the lease: counted as used, never billed), lost (unspent in the lease of a replica that died, found by the sweep: counted as used, never billed), unknown (a block whose debit timed out or was not confirmed: possibly counted as used, never billed).",
            ["pool", "outcome"]);
        _leasesTaken = factory.CreateCounter("quota_proxy_leases_taken_total", "Credit leases this replica took (each one store decision).", ["pool"]);
        _leasedCredits = factory.CreateGauge("quota_proxy_leased_credits", "Unspent credits this replica holds in credit leases: used in the store, not yet spent or returned.", ["pool"]);
        _waiting = factory.CreateGauge("quota_proxy_waiting_requests", "Requests waiting for capacity on a pool in this replica (the pool's Wait).", ["pool"]);
        _waitDuration = factory.CreateHistogram(
            "quota_proxy_wait_duration_seconds",
            "Time requests waited for capacity, by pool and how the wait ended: admitted, timed_out (MaxWait: 429), client_closed, store_unavailable, queue_full (MaxQueued: 429 at once, no wait).",
            new HistogramConfiguration { LabelNames = ["pool", "outcome"], Buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] });
    }

    public CollectorRegistry Registry { get; }

    /// <summary>What Envoy's and Kong's operators read first: end-to-end and upstream time by route and status, and the quota step's own time.</summary>
    private static readonly double[] RequestBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

    private (Histogram Decision, Histogram Request, Histogram Upstream, Counter AccessLogDropped) CreateRequestTimings(MetricFactory factory) =>
    (
        factory.CreateHistogram(
            "quota_proxy_decision_duration_seconds",
            "The quota step of a metered request, by route: identity, price and the store's decision (a store that does not answer counts its timeout).",
            new HistogramConfiguration { LabelNames = ["route"], Buckets = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1] }),
        factory.CreateHistogram(
            "quota_proxy_request_duration_seconds",
            "Requests through the proxy's routes, metered or not, from the quota step to the response's end, by route and the status the caller got.",
            new HistogramConfiguration { LabelNames = ["route", "status"], Buckets = RequestBuckets }),
        factory.CreateHistogram(
            "quota_proxy_upstream_duration_seconds",
            "Calls to the vendor, from the forwarded request to the vendor's response headers, by route and the vendor's status (0: no answer).",
            new HistogramConfiguration { LabelNames = ["route", "status"], Buckets = RequestBuckets }),
        factory.CreateCounter("quota_proxy_access_log_dropped_total", "Access log lines dropped because the writer fell behind (Quota:AccessLog)."));

    public void Decision(string route, double seconds) =>
        _decisionChildren.GetOrAdd(route, static (key, histogram) => histogram.WithLabels(key), _decisionDuration).Observe(seconds);

    public void RequestEnded(string route, int status, double seconds) =>
        _requestDurationChildren.GetOrAdd((route, status), static (key, histogram) =>
            histogram.WithLabels(key.Route, key.Status.ToString(System.Globalization.CultureInfo.InvariantCulture)), _requestDuration).Observe(seconds);

    /// <param name="status">The vendor's status, or <see cref="NoUpstreamAnswer"/>.</param>
    public void Upstream(string route, int status, double seconds) =>
        _upstreamChildren.GetOrAdd((route, status), static (key, histogram) =>
            histogram.WithLabels(key.Route, key.Status.ToString(System.Globalization.CultureInfo.InvariantCulture)), _upstreamDuration).Observe(seconds);

    public void AccessLogDropped() => _accessLogDropped.Inc();

    /// <param name="outcome">granted, spent, returned, forfeited, lost or unknown.</param>
    public void LeaseCredits(string pool, string outcome, long credits)
    {
        if (credits != 0)
        {
            _leaseCredits.WithLabels(pool, outcome).Inc(credits);
        }
    }

    public void LeaseTaken(string pool) => _leasesTaken.WithLabels(pool).Inc();

    public void LeasedCredits(string pool, long credits) => _leasedCredits.WithLabels(pool).Set(credits);

    public void Waiting(string pool, int count) => _waiting.WithLabels(pool).Set(count);

    public void Waited(string pool, string outcome, double seconds) => _waitDuration.WithLabels(pool, outcome).Observe(seconds);

    /// <param name="outcome">delivered, attempt_failed or given_up.</param>
    public void Notification(string webhook, string outcome) => _notifications.WithLabels(webhook, outcome).Inc();

    /// <param name="exhaustsInSeconds">Null: not forecast to run out in this window (+Inf).</param>
    public void Forecast(string pool, QuotaNode node, double creditsPerSecond, double? exhaustsInSeconds)
    {
        _burnRate.WithLabels(pool, NodeLabel(node)).Set(creditsPerSecond);
        _projectedExhaustion.WithLabels(pool, NodeLabel(node)).Set(exhaustsInSeconds ?? double.PositiveInfinity);
    }

    /// <summary>The label for a tenant node: its path, or <c>(pool)</c> for the pool itself.</summary>
    public static string NodeLabel(QuotaNode node) => node.IsRoot ? "(pool)" : node.Path;

    public void Request(string route, string pools, string tenant, RequestOutcome outcome) =>
        _requestChildren.GetOrAdd((route, pools, tenant, outcome), static (key, requests) =>
            requests.WithLabels(key.Route, key.Pools, key.Tenant, OutcomeLabels[key.Outcome]), _requests).Inc();

    /// <summary>Positive credits count as debited, negative ones as refunded.</summary>
    public void Credits(string pool, string tenant, string route, long credits)
    {
        if (credits > 0)
        {
            _debitedChildren.GetOrAdd((pool, tenant, route), static (key, debited) =>
                debited.WithLabels(key.Pool, key.Tenant, key.Route), _creditsDebited).Inc(credits);
        }
        else if (credits < 0)
        {
            _creditsRefunded.WithLabels(pool, tenant, route).Inc(-credits);
        }
    }

    public void PoolUsage(PoolDefinition pool, long used)
    {
        var (usedChild, limitChild) = _poolChildren.GetOrAdd(pool.Name, static (name, metrics) =>
            (metrics._poolUsed.WithLabels(name), metrics._poolLimit.WithLabels(name)), this);
        usedChild.Set(used);
        limitChild.Set(pool.Limit);
    }

    public void TenantUsage(PoolDefinition pool, QuotaNode tenant, long used)
    {
        var (usedChild, limitChild) = _tenantChildren.GetOrAdd((pool.Name, tenant.Path), static (key, metrics) =>
            (metrics._tenantUsed.WithLabels(key.Pool, key.Tenant), metrics._tenantLimit.WithLabels(key.Pool, key.Tenant)), this);
        usedChild.Set(used);
        limitChild.Set(tenant.EffectiveLimit);
    }

    /// <summary>Times one store call from <paramref name="startTimestamp"/> (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>).</summary>
    public void StoreCall(string operation, long startTimestamp, bool failed)
    {
        var (duration, errors) = _storeChildren.GetOrAdd(operation, static (name, metrics) =>
            (metrics._storeDuration.WithLabels(name), metrics._storeErrors.WithLabels(name)), this);
        duration.Observe(System.Diagnostics.Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds);
        if (failed)
        {
            errors.Inc();
        }
    }

    /// <param name="pool">The pool whose name is the hash tag of the keys the circuit guards.</param>
    public void EmergencyAdmission(string pool, long credits) => _emergencyAdmissions.WithLabels(pool).Inc(credits);

    public void EmergencyJournalPending(int records) => _emergencyJournalPending.Set(records);

    public void StoreBreakerOpen(string pool, bool open) => _storeBreakerOpen.WithLabels(pool).Set(open ? 1 : 0);

    /// <param name="reason">missing or unknown.</param>
    public void AdminAuthenticationFailed(string reason) => _adminAuthFailures.WithLabels(reason).Inc();

    /// <param name="outcome">One of <see cref="AbandonedOutcomes"/>.</param>
    public void AbandonedDecision(string outcome) => _abandonedDecisions.WithLabels(outcome).Inc();

    /// <param name="outcome">kept, restored or empty.</param>
    public void StoreBaseline(string pool, string outcome) => _storeBaselines.WithLabels(pool, outcome).Inc();

    public void StoreAudit(string pool, string outcome) => _storeAudits.WithLabels(pool, outcome).Inc();

    public void LedgerBacklog(string pool, long events) => _ledgerBacklog.WithLabels(pool).Set(events);

    public void LedgerFlushed(string pool, int events, IEnumerable<TimeSpan> lags)
    {
        _ledgerEventsWritten.WithLabels(pool).Inc(events);
        foreach (var lag in lags)
        {
            _ledgerFlushLag.Observe(Math.Max(0, lag.TotalSeconds));
        }
    }

    public void LedgerFlushFailed() => _ledgerFlushErrors.Inc();

    public void SoftLimitCrossed(string pool, QuotaNode node) => _softLimitCrossings.WithLabels(pool, NodeLabel(node)).Inc();

    public void VendorClosed(string pool) => _vendorClosures.WithLabels(pool).Inc();

    public void ConfigReloaded(bool applied) => _configReloads.WithLabels(applied ? "applied" : "rejected").Inc();
}
