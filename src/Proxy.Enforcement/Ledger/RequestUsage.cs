namespace QuotaProxy.Enforcement.Ledger;

/// <summary>One usage event of one request, as the ledger holds it: its charge, refund, settlement or replay.</summary>
internal sealed record RequestUsage(DateTimeOffset OccurredAt, string Pool, string Tenant, string Route, string Kind, long Credits);
