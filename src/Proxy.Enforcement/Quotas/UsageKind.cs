namespace QuotaProxy.Enforcement.Quotas;

/// <summary>What an event records. Credits are signed: a refund is negative, an adjustment either way.</summary>
internal enum UsageKind
{
    Debit,
    Refund,
    Adjustment,
    Overage,

    /// <summary>A free retry under an idempotency key the vendor honours: 0 credits, recorded so that billing sees every call.</summary>
    Replay,

    /// <summary>
    /// An operator's reset: credits given back to the counters (negative), not to the bill. The vendor calls
    /// happened, so billing leaves resets out; the counters a lost window is rebuilt with take them in.
    /// </summary>
    Reset,

    /// <summary>
    /// Credits a credit lease held unspent when it was voided (a reset, a store failover) or its replica
    /// died: the counters keep them as used, no vendor call was made for them, so billing leaves them out.
    /// </summary>
    Lease,
}
