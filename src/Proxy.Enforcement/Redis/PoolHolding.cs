using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>One pool as <c>snapshot.lua</c> read it: its counters, and the usage events its stream still holds.</summary>
/// <param name="Start">The start of the window the hash holds (Unix ms); null when Redis holds none.</param>
/// <param name="LastId">The last id the pool's stream gave, "" when it has none: unchanged as long as no event is written.</param>
/// <param name="Pending">The stream's events; null when there were too many to read.</param>
internal sealed record PoolHolding(PoolDefinition Pool, long? Start, IReadOnlyDictionary<string, long> Counters, string LastId, IReadOnlyList<UsageEvent>? Pending);
