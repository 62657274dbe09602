using Microsoft.Extensions.Logging;

namespace QuotaProxy.Enforcement.Observability;

/// <summary>Log messages of the enforcement library. Event ids: 1000–1099 decisions, 1100–1199 store, 1200–1299 config.</summary>
internal static partial class QuotaLog
{
    [LoggerMessage(EventId = 1001, Level = LogLevel.Debug, Message = "Rejected {Cost} credits for tenant {Tenant} in pool {Pool}: {LimitedBy} limit, {Remaining} remaining")]
    public static partial void Rejected(ILogger logger, string pool, string tenant, long cost, string limitedBy, long remaining);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Unidentified caller on metered route {Route}")]
    public static partial void Unidentified(ILogger logger, string route);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Information, Message = "Tenant {Tenant} is not in pool {Pool} (route {Route})")]
    public static partial void Forbidden(ILogger logger, string tenant, string pool, string route);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Warning, Message = "Soft limit crossed in pool {Pool}: {Node} is above {SoftLimit} credits this window")]
    public static partial void SoftLimitCrossed(ILogger logger, string pool, string node, long softLimit);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Information, Message = "Shadow mode admitted {Cost} credits for tenant {Tenant} in pool {Pool} that enforcement would reject: {LimitedBy}")]
    public static partial void ShadowRejected(ILogger logger, string pool, string tenant, long cost, string limitedBy);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Warning, Message = "Vendor answered 429 on route {Route}: pool {Pool} closed until {Until:O}")]
    public static partial void VendorLimited(ILogger logger, string route, string pool, DateTimeOffset until);

    [LoggerMessage(EventId = 1007, Level = LogLevel.Information, Message = "Refunded {Cost} credits to tenant {Tenant} on route {Route} (status {Status}, forwarder error {Error}) in {Pools} pool(s)")]
    public static partial void Refunded(ILogger logger, long cost, string tenant, string route, int status, string error, int pools);

    [LoggerMessage(EventId = 1012, Level = LogLevel.Warning, Message = "Route {Route}: response header {Header} says {Reported} credits, above the route's Quota.MaxCost; charged {MaxCost}")]
    public static partial void SettlementCapped(ILogger logger, string route, string header, long reported, long maxCost);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Warning, Message = "Route {Route}: response header {Header} is '{Value}', not a credit count; the reserved cost stands")]
    public static partial void SettlementHeaderMissing(ILogger logger, string route, string header, string value);

    [LoggerMessage(EventId = 1009, Level = LogLevel.Error, Message = "Ledger backlog full for pool {Pool}: metered requests get 503 until the flusher catches up")]
    public static partial void LedgerBacklogFull(ILogger logger, string pool);

    [LoggerMessage(EventId = 1101, Level = LogLevel.Warning, Message = "Quota store unavailable for pool {Pool}")]
    public static partial void StoreUnavailable(ILogger logger, string pool, Exception exception);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Warning, Message = "Ledger flush failed for pool {Pool}; its events wait in Redis and the other pools' go on")]
    public static partial void LedgerFlushFailed(ILogger logger, string pool, Exception exception);

    [LoggerMessage(EventId = 1104, Level = LogLevel.Warning, Message = "Ledger backlog could not be measured: Redis did not answer")]
    public static partial void LedgerBacklogUnknown(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1105, Level = LogLevel.Error, Message = "Store circuit opened for the keys of pool {Pool}: they are not called for {BreakMs} ms; their requests get the outage policy at once")]
    public static partial void StoreBreakerOpened(ILogger logger, string pool, double breakMs, Exception? exception);

    [LoggerMessage(EventId = 1106, Level = LogLevel.Information, Message = "Store circuit closed for the keys of pool {Pool}: the store answers again")]
    public static partial void StoreBreakerClosed(ILogger logger, string pool);

    [LoggerMessage(EventId = 1107, Level = LogLevel.Warning, Message = "A decision the proxy answered 503 for landed in Redis later; its {Credits} credit(s) were given back ({Outcome})")]
    public static partial void AbandonedDecisionRefunded(ILogger logger, long credits, string outcome);

    [LoggerMessage(EventId = 1108, Level = LogLevel.Error, Message = "A decision the proxy answered 503 for landed in Redis later and its {Credits} credit(s) could not be given back")]
    public static partial void AbandonedDecisionNotRefunded(ILogger logger, long credits, Exception? exception);

    [LoggerMessage(EventId = 1115, Level = LogLevel.Error, Message = "A decision the proxy answered 503 for lost its reply, and whether it was admitted could not be looked up; its {Credits} credit(s) stay charged if it was")]
    public static partial void LostReplyNotResolved(ILogger logger, long credits, Exception? exception);

    [LoggerMessage(EventId = 1109, Level = LogLevel.Warning, Message = "Usage gauges not refreshed this pass; they keep their values")]
    public static partial void UsageRefreshFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1110, Level = LogLevel.Information, Message = "Store warmed up: {Decided} of {Decisions} warm-up decisions answered in {ElapsedMs} ms")]
    public static partial void StoreWarmedUp(ILogger logger, int decided, int decisions, long elapsedMs);

    [LoggerMessage(EventId = 1111, Level = LogLevel.Warning, Message = "Store warm-up gave up after {ElapsedMs} ms; the proxy starts, and the outage policy answers until Redis does")]
    public static partial void StoreWarmupFailed(ILogger logger, long elapsedMs, Exception exception);

    [LoggerMessage(EventId = 1112, Level = LogLevel.Warning, Message = "Redis at {Endpoint} has no append-only file (appendonly no): a restart loses this window's counters and its usage events not yet in the ledger. Production needs appendonly yes (see the README)")]
    public static partial void StoreWithoutAppendOnlyFile(ILogger logger, string endpoint);

    [LoggerMessage(EventId = 1113, Level = LogLevel.Warning, Message = "Redis had lost the counters of pool {Pool} (no baseline): its window from {WindowStart:o} restored or raised back from the ledger, {PoolCredits} credit(s) used, before deciding again")]
    public static partial void StoreCountersRestored(ILogger logger, string pool, long poolCredits, DateTimeOffset windowStart);

    [LoggerMessage(EventId = 1114, Level = LogLevel.Warning, Message = "Redis holds no counters for pool {Pool}'s current window and no ledger is configured to restore them from: the window goes on from zero (expected on a first start; after a Redis restart without persistence, the window's earlier usage is forgotten)")]
    public static partial void StoreBaselineWithoutLedger(ILogger logger, string pool);

    [LoggerMessage(EventId = 1116, Level = LogLevel.Error, Message = "Redis has lost writes to pool {Pool} that the ledger billed (a failover to a replica that had not caught up?): its counters hold {HeldCredits} credit(s), the ledger and the stream charged {ChargedCredits}, {Fields} counter(s) short. Decisions wait while they are raised back")]
    public static partial void StoreLostWrites(ILogger logger, string pool, long heldCredits, long chargedCredits, int fields);

    [LoggerMessage(EventId = 1117, Level = LogLevel.Warning, Message = "Pool {Pool}'s counters could not be held against the ledger; Redis keeps them as they are")]
    public static partial void StoreAuditFailed(ILogger logger, string pool, Exception exception);

    [LoggerMessage(EventId = 1216, Level = LogLevel.Warning, Message = "Runtime API keys could not be read or written; the keys known stay in force, and it is tried again within a second")]
    public static partial void RuntimeKeysUnavailable(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1120, Level = LogLevel.Information, Message = "Emergency journal {Path}: {Pending} admission(s) to charge once the store answers")]
    public static partial void EmergencyJournalOpened(ILogger logger, string path, int pending);

    [LoggerMessage(EventId = 1121, Level = LogLevel.Information, Message = "Journaled emergency admission {Id} charged: {Credits} credit(s) for tenant {Tenant}")]
    public static partial void EmergencyRecordCharged(ILogger logger, string id, long credits, string tenant);

    [LoggerMessage(EventId = 1122, Level = LogLevel.Warning, Message = "Journaled emergency admission {Id} dropped: pool {Pool} or tenant {Tenant} is no longer configured")]
    public static partial void EmergencyRecordDropped(ILogger logger, string id, string pool, string tenant);

    [LoggerMessage(EventId = 1123, Level = LogLevel.Warning, Message = "Journaled emergency admission {Id} not charged this pass; it stays journaled")]
    public static partial void EmergencyReplayFailed(ILogger logger, string id, Exception exception);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Warning, Message = "The vendor asked pool {Pool} to wait until {Until:o}; closed for its MaxClosure of {MaxClosureSeconds} s instead")]
    public static partial void VendorClosureCapped(ILogger logger, string pool, DateTimeOffset until, double maxClosureSeconds);

    [LoggerMessage(EventId = 1302, Level = LogLevel.Warning, Message = "Pool {Pool} reopened by {Actor}: its vendor closure until {ClosedUntil} ends now")]
    public static partial void PoolReopened(ILogger logger, string pool, string actor, long closedUntil);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Warning, Message = "Quota:Enabled is false: every route is forwarded unmetered, with no limit and no billing")]
    public static partial void QuotaDisabled(ILogger logger);

    [LoggerMessage(EventId = 1303, Level = LogLevel.Warning, Message = "The admin API listens on every interface ({Url}): keep its port away from callers (a firewall, a NetworkPolicy), or bind it to a private address")]
    public static partial void AdminListensOnEveryInterface(ILogger logger, string url);

    [LoggerMessage(EventId = 1301, Level = LogLevel.Warning, Message = "Admin authentication failed ({Reason} key) from {Remote}: {Method} {Path}")]
    public static partial void AdminAuthenticationFailed(ILogger logger, string reason, string remote, string method, string path);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Information, Message = "Redis quota store: {Endpoint}, timeout {TimeoutMs} ms, key prefix {Prefix}")]
    public static partial void RedisStoreConfigured(ILogger logger, string endpoint, double timeoutMs, string prefix);

    [LoggerMessage(EventId = 1201, Level = LogLevel.Information, Message = "Runtime overrides applied: {Count} tenant(s) differ from the config")]
    public static partial void OverridesApplied(ILogger logger, int count);

    [LoggerMessage(EventId = 1202, Level = LogLevel.Error, Message = "Runtime overrides refused, the model in force stays: {Errors}")]
    public static partial void OverridesRefused(ILogger logger, string errors);

    [LoggerMessage(EventId = 1203, Level = LogLevel.Warning, Message = "Runtime overrides could not be read; the model in force stays")]
    public static partial void OverridesUnavailable(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1204, Level = LogLevel.Information, Message = "Admin {Actor}: {Action} {Pool}/{Tenant}: {Old} -> {New}")]
    public static partial void AdminAction(ILogger logger, string actor, string action, string pool, string tenant, string old, string @new);

    [LoggerMessage(EventId = 1217, Level = LogLevel.Information, Message = "Runtime override {Key} expired at {ExpiresAt}: this replica applies the configured values again")]
    public static partial void OverrideExpired(ILogger logger, string key, DateTimeOffset expiresAt);

    [LoggerMessage(EventId = 1218, Level = LogLevel.Warning, Message = "The end of runtime override {Key} (expired at {ExpiresAt}) could not be removed from the store or recorded yet; it is out of force, and tried again")]
    public static partial void OverrideExpiryPending(ILogger logger, Exception exception, string key, DateTimeOffset expiresAt);

    [LoggerMessage(EventId = 1013, Level = LogLevel.Warning, Message = "A pass over the requests waiting on pool {Pool} failed; they are tried again at the next")]
    public static partial void WaitPassFailed(ILogger logger, Exception exception, string pool);

    [LoggerMessage(EventId = 1400, Level = LogLevel.Information, Message = "Pool {Pool}, node {Node}: {Threshold} % of its limit crossed ({Used} of {Limit}); notifying the webhooks")]
    public static partial void ThresholdCrossed(ILogger logger, string pool, string node, int threshold, long used, long limit);

    [LoggerMessage(EventId = 1401, Level = LogLevel.Information, Message = "Notification {Id} delivered to webhook {Webhook} in {Attempts} attempt(s)")]
    public static partial void NotificationDelivered(ILogger logger, string id, string webhook, int attempts);

    [LoggerMessage(EventId = 1402, Level = LogLevel.Error, Message = "Notification {Id} given up for webhook {Webhook} after {Attempts} attempt(s)")]
    public static partial void NotificationGivenUp(ILogger logger, Exception? exception, string id, string webhook, int attempts);

    [LoggerMessage(EventId = 1403, Level = LogLevel.Warning, Message = "The store did not answer the claim of notification {Id}; the next usage read asks again")]
    public static partial void NotificationClaimFailed(ILogger logger, Exception exception, string id);

    [LoggerMessage(EventId = 1210, Level = LogLevel.Information, Message = "Configuration reloaded: {Pools} pool(s), {Routes} route(s) in force")]
    public static partial void ConfigReloaded(ILogger logger, int pools, int routes);

    [LoggerMessage(EventId = 1211, Level = LogLevel.Error, Message = "Configuration reload refused, the last good configuration stays in force; {Count} error(s):\n{Errors}")]
    public static partial void ConfigReloadRefused(ILogger logger, int count, string errors);

    [LoggerMessage(EventId = 1213, Level = LogLevel.Error, Message = "Configuration reload failed, the last good configuration stays in force")]
    public static partial void ConfigReloadFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1212, Level = LogLevel.Warning, Message = "Configuration edits to {Sections} take effect at the next restart; the running values stay")]
    public static partial void ConfigNeedsRestart(ILogger logger, string sections);

    [LoggerMessage(EventId = 1500, Level = LogLevel.Error, Message = "Pool {Pool}, tenant {Tenant}: {Records} credit lease record(s) with {Spends} spend(s) could not reach the store before their lease's grace ran out; those requests stay counted as used and are not billed")]
    public static partial void LeaseRecordsDropped(ILogger logger, string pool, string tenant, int records, int spends);

    [LoggerMessage(EventId = 1501, Level = LogLevel.Warning, Message = "Pool {Pool}: {Leases} credit lease(s) of a replica that stopped without returning them held {Credits} unspent credit(s); they stay counted as used and are never billed")]
    public static partial void LeasesLost(ILogger logger, string pool, long leases, long credits);

    [LoggerMessage(EventId = 1502, Level = LogLevel.Warning, Message = "The credit lease keeper could not finish a pass; the next one tries again")]
    public static partial void LeasePassFailed(ILogger logger, Exception exception);
}
