namespace QuotaProxy.Enforcement.Redis;

/// <summary>A debit found by its usage event: when it was made (Unix ms, the store's clock), and its event's id while the event is still in the stream (null once it is in the ledger).</summary>
internal sealed record LandedDebit(long AtMs, string? StreamId);
