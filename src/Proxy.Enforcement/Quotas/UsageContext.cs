namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// What the store needs about a request besides its credits: the route and request id the ledger records,
/// and the caller's idempotency key (a retry with the same key is charged once per window).
/// </summary>
internal sealed record UsageContext(string Route, string RequestId, string? IdempotencyKey = null);
