namespace QuotaProxy.Enforcement.Quotas;

/// <summary>The names usage kinds have in the ledger and in the store's event stream.</summary>
internal static class UsageKinds
{
    /// <summary><c>debit</c>, <c>refund</c>, <c>adjustment</c>, <c>overage</c>, <c>replay</c>, <c>reset</c>, <c>lease</c>.</summary>
    public static string Name(UsageKind kind) => kind switch
    {
        UsageKind.Debit => "debit",
        UsageKind.Refund => "refund",
        UsageKind.Adjustment => "adjustment",
        UsageKind.Replay => "replay",
        UsageKind.Reset => "reset",
        UsageKind.Lease => "lease",
        _ => "overage",
    };
}
