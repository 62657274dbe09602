using System.Collections.Concurrent;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// Every Redis key the proxy uses is built here. The pool name is the hash tag, so every key one decision
/// touches lives in one cluster slot.
/// </summary>
internal sealed class RedisKeys(string prefix)
{
    private readonly ConcurrentDictionary<string, RedisKey[]> _poolKeys = new(StringComparer.Ordinal);

    public string Prefix { get; } = prefix;

    /// <summary><c>qp:{vendor-daily}:usage</c>: the pool's counters for its current window (built once per pool).</summary>
    public RedisKey PoolUsage(string pool) => PoolKeys(pool)[0];

    /// <summary><c>qp:{vendor-daily}:state</c>: the pool's fields that outlive windows (GCRA arrival times).</summary>
    public RedisKey PoolState(string pool) => PoolKeys(pool)[1];

    /// <summary>KEYS of debit.lua: the usage hash and the state hash, built once per pool. Callers must not change the array.</summary>
    public RedisKey[] PoolKeys(string pool) => _poolKeys.GetOrAdd(
        pool,
        static (name, prefix) => [(RedisKey)$"{prefix}{{{name}}}:usage", (RedisKey)$"{prefix}{{{name}}}:state"],
        Prefix);
}
