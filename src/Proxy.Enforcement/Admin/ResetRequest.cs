namespace QuotaProxy.Enforcement.Admin;

/// <summary>The body of a reset: a tenant, or none for the whole pool.</summary>
public sealed record ResetRequest(string? Tenant);
