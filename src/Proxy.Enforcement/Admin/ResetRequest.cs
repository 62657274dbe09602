namespace QuotaProxy.Enforcement.Admin;

/// <summary>The body of a reset: a tenant, or none for the whole pool.</summary>
internal sealed record ResetRequest(string? Tenant);
