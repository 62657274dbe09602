namespace QuotaProxy.Enforcement.Ledger;

/// <summary>What an event records. Credits are signed: a refund is negative, an adjustment either way.</summary>
public enum UsageKind
{
    Debit,
    Refund,
    Adjustment,
    Overage,
}

/// <summary>
/// One line of the billing ledger: credits charged to (or returned to) a tenant of a pool for a request on
/// a route, at the store's clock. <paramref name="EventId"/> is unique; writing the same event twice bills it once.
/// </summary>
public sealed record UsageEvent(
    string EventId,
    DateTimeOffset OccurredAt,
    string Pool,
    string Tenant,
    string Route,
    long Credits,
    UsageKind Kind,
    bool Shadow,
    string? RequestId)
{
    /// <summary>The ledger's name for a kind: <c>debit</c>, <c>refund</c>, <c>adjustment</c>, <c>overage</c>.</summary>
    public static string KindName(UsageKind kind) => kind switch
    {
        UsageKind.Debit => "debit",
        UsageKind.Refund => "refund",
        UsageKind.Adjustment => "adjustment",
        _ => "overage",
    };
}
