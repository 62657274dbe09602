namespace QuotaProxy.Enforcement.Quotas;

/// <summary>What limited a rejected (or, in shadow mode, a would-be rejected) request.</summary>
internal enum QuotaLimitedBy
{
    None = 0,

    /// <summary>A tenant node's <c>Limit</c> (plus its <c>Overage</c>) would be exceeded.</summary>
    Tenant = 1,

    /// <summary>The pool's <c>Limit</c> would be exceeded.</summary>
    Pool = 2,

    /// <summary>What is left is held for others: unused guarantees, or unused allocations of higher priority.</summary>
    Reserved = 3,

    /// <summary>A node's <c>Rate</c> has no room for the cost yet; <see cref="QuotaDecision.RetryAfterMicros"/> says when it will.</summary>
    Rate = 4,

    /// <summary>The vendor answered 429 and the pool is closed until its Retry-After (or the window's end).</summary>
    Vendor = 5,

    /// <summary>A node already has <c>MaxInFlight</c> requests in flight.</summary>
    Concurrency = 6,

    /// <summary>The ledger's backlog is full (PostgreSQL has been away too long): nothing is admitted that could not be billed.</summary>
    LedgerBacklog = 7,

    /// <summary>
    /// The store reached the decision after the proxy had stopped waiting for it: nothing was debited, and the
    /// request gets the outage policy. Only the Redis store reports it.
    /// </summary>
    Expired = 8,

    /// <summary>The idempotency key was first used for a different request (tenant, route, method, path or body): answered 422.</summary>
    IdempotencyConflict = 9,
}
