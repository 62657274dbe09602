namespace QuotaProxy.Enforcement.Admin;

/// <summary>A pool as the status endpoint shows it: its window now, its credits, its forecast, and every tenant asked for.</summary>
internal sealed record PoolStatus(
    string Pool, string Window, DateTimeOffset WindowStart, DateTimeOffset WindowEnd, long Limit, long Used, long Available, DateTimeOffset? ClosedUntil, IReadOnlyList<TenantStatus> Tenants, ForecastStatus? Forecast);
