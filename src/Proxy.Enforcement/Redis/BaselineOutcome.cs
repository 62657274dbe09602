namespace QuotaProxy.Enforcement.Redis;

/// <summary>What <c>baseline.lua</c> did with one pool's counters (its reply values).</summary>
internal enum BaselineOutcome
{
    /// <summary>The pool's hash already held the current window: kept (none of its counters below what the ledger and the stream charged).</summary>
    Kept = 0,

    /// <summary>Written from what the ledger billed in the window.</summary>
    Restored = 1,

    /// <summary>Nothing to restore: no counters in Redis and none in the ledger (or no ledger).</summary>
    Empty = 2,

    /// <summary>The hash held the window, but some counters were below what the ledger and the stream charged (writes lost in a failover): raised to it.</summary>
    Raised = 3,
}
