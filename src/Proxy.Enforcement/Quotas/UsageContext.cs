namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// What the store needs about a request besides its credits: the route and request id the ledger records,
/// and, on a route whose vendor honours idempotency keys, the caller's key (<see cref="IdempotencyClaim"/>).
/// </summary>
internal sealed record UsageContext(string Route, string RequestId, IdempotencyClaim? Idempotency = null);
