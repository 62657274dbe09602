namespace QuotaProxy.Enforcement.Ledger;

/// <summary>One row of a usage report: a UTC day, a pool, a tenant and a route, from the daily rollups.</summary>
internal sealed record DailyUsage(DateOnly Day, string Pool, string Tenant, string Route, long Debited, long Overage, long Refunded, long Adjusted, long Net, long Events);
