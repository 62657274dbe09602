namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// Credits a request took from (or, negative, gave back to) a credit lease: with the ledger on, one usage
/// event, written with the lease's next record (<see cref="IQuotaStore.RecordLeaseAsync"/>).
/// </summary>
internal readonly record struct LeasedSpend(string Route, string? RequestId, long Credits, UsageKind Kind, long AtMs);
