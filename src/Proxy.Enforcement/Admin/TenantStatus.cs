using QuotaProxy.Enforcement.Configuration;

namespace QuotaProxy.Enforcement.Admin;

/// <summary>A tenant as the status endpoint shows it. <c>Limit</c> is its own; <c>EffectiveLimit</c> the smallest on its path.</summary>
internal sealed record TenantStatus(
    string Tenant, long Limit, long EffectiveLimit, long Allocation, long Guaranteed, int? Priority, long Used, long Available, TenantOverride? Override, ForecastStatus? Forecast,
    long? SoftLimit = null, string Mode = "enforce");
