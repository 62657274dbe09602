namespace QuotaProxy.Enforcement.Admin;

/// <summary>
/// The body of an override: the fields to change (the others keep their current values), and when the
/// whole override ends by itself (none: it lasts until dropped).
/// </summary>
internal sealed record OverrideRequest(long? Limit, long? Allocation, long? Guaranteed, DateTimeOffset? ExpiresAt = null);
