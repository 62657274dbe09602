namespace QuotaProxy.Enforcement.Outage;

/// <summary>A pool an emergency admission was charged to, and the start of the window it fell in (Unix ms).</summary>
internal sealed record JournalPool(string Pool, long WindowStartMs);
