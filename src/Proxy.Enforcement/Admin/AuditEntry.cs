using System.Text.Json;

namespace QuotaProxy.Enforcement.Admin;

/// <summary>One row of the audit trail, as the admin API's audit endpoint returns it.</summary>
internal sealed record AuditEntry(long Id, DateTimeOffset At, string Actor, string Action, string Pool, string? Tenant, JsonElement? Old, JsonElement? New);
