namespace QuotaProxy.Enforcement.Redis;

/// <summary>What <c>baseline.lua</c> did with one pool's counters (its reply values).</summary>
internal enum BaselineOutcome
{
    /// <summary>The pool's hash already held the current window: kept (its counters are newer than the ledger's).</summary>
    Kept = 0,

    /// <summary>Written from what the ledger billed in the window.</summary>
    Restored = 1,

    /// <summary>Nothing to restore: no counters in Redis and none in the ledger (or no ledger).</summary>
    Empty = 2,
}
