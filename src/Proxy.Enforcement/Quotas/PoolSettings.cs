namespace QuotaProxy.Enforcement.Quotas;

/// <summary>A pool as configured: its window, the zone its calendar windows follow, and its tree (the root's settings hold the pool's own limit, rate and mode).</summary>
/// <param name="Lease">Credit leases, or null: one store decision per request.</param>
/// <param name="EmergencyAllowance">Credits one replica may admit for the pool per window while the store is unreachable (outage policy AllowBounded).</param>
internal sealed record PoolSettings(QuotaWindow Window, TimeZoneInfo TimeZone, NodeSettings Root, long EmergencyAllowance = 0, TimeSpan? MaxClosure = null, LeaseSettings? Lease = null);
