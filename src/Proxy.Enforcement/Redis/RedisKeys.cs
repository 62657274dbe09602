using System.Collections.Concurrent;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// Every Redis key the proxy uses is built here. The pool name is the hash tag, so every key one decision
/// touches lives in one cluster slot.
/// </summary>
internal sealed class RedisKeys(string prefix)
{
    private readonly ConcurrentDictionary<string, RedisKey> _poolUsage = new(StringComparer.Ordinal);

    public string Prefix { get; } = prefix;

    /// <summary><c>qp:{vendor-daily}:usage</c>: the pool's counters for its current window (built once per pool).</summary>
    public RedisKey PoolUsage(string pool) => _poolUsage.GetOrAdd(pool, static (name, prefix) => (RedisKey)$"{prefix}{{{name}}}:usage", Prefix);
}
