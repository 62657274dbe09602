namespace QuotaProxy.Enforcement.Admin;

/// <summary><c>POST /admin/v1/keys</c>: the tenant a new API key identifies, a name for people, and an optional expiry.</summary>
internal sealed record KeyRequest(string? Tenant, string? Name, DateTimeOffset? ExpiresAt);
