namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// One line of the billing ledger: credits charged to (or returned to) a tenant of a pool for a request on
/// a route, at the store's clock. <paramref name="EventId"/> is unique; writing the same event twice bills it once.
/// </summary>
internal sealed record UsageEvent(
    string EventId,
    DateTimeOffset OccurredAt,
    string Pool,
    string Tenant,
    string Route,
    long Credits,
    UsageKind Kind,
    bool Shadow,
    string? RequestId);
