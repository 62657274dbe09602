namespace QuotaProxy.Enforcement.Observability;

/// <summary>What a metered request came to, as the <c>outcome</c> label of <c>quota_proxy_requests_total</c>.</summary>
internal enum RequestOutcome
{
    Admitted,
    RejectedQuota,
    RejectedRate,
    RejectedConcurrency,
    ShadowRejected,
    Unidentified,
    Forbidden,
    InvalidRequest,
    StoreUnavailable,
    VendorLimited,
    LedgerBacklogFull,

    /// <summary>The caller went away before the request was forwarded; nothing was charged.</summary>
    ClientClosed,

    /// <summary>Forwarded after waiting for capacity (a pool's Wait).</summary>
    Waited,
}
