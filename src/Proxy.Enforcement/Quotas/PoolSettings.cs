namespace QuotaProxy.Enforcement.Quotas;

/// <summary>A pool as configured: its window, the zone its calendar windows follow, and its tree (the root's settings hold the pool's own limit, rate and mode).</summary>
internal sealed record PoolSettings(QuotaWindow Window, TimeZoneInfo TimeZone, NodeSettings Root);
