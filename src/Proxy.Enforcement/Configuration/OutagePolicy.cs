namespace QuotaProxy.Enforcement.Configuration;

/// <summary>What a metered request gets while the counter store is unreachable.</summary>
public enum OutagePolicy
{
    /// <summary>503 with Retry-After: nothing is admitted that the store has not decided.</summary>
    Reject,

    /// <summary>Up to each pool's <c>EmergencyAllowance</c> per replica per window, journaled on disk and charged (with their usage events) once the store is back.</summary>
    AllowBounded,
}
