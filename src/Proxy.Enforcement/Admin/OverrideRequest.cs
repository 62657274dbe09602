namespace QuotaProxy.Enforcement.Admin;

/// <summary>The body of an override: the fields to change (the others keep their current values).</summary>
internal sealed record OverrideRequest(long? Limit, long? Allocation, long? Guaranteed);
