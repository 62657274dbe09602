namespace QuotaProxy.Enforcement.Quotas;

/// <summary>What an event records. Credits are signed: a refund is negative, an adjustment either way.</summary>
internal enum UsageKind
{
    Debit,
    Refund,
    Adjustment,
    Overage,
}
