using System.Collections.Concurrent;
using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// Every Redis key the proxy uses is built here. The pool's hash tag (its name, or the name it shares with
/// the pools a route draws on together) is in braces, so every key one decision touches lives in one
/// cluster slot.
/// </summary>
internal sealed class RedisKeys(string prefix)
{
    private readonly ConcurrentDictionary<(string Tag, string Name), PoolKeySet> _pools = new();

    public string Prefix { get; } = prefix;

    /// <summary>
    /// <c>qp:{vendor-daily}:usage</c>: the pool's counters for its current window; for a pool tagged with
    /// another's name, <c>qp:{vendor-daily}:vendor-second:usage</c>.
    /// </summary>
    public RedisKey PoolUsage(PoolDefinition pool) => PoolKeys(pool)[0];

    /// <summary><c>qp:{vendor-daily}:state</c>: the pool's fields that outlive windows (GCRA arrival times).</summary>
    public RedisKey PoolState(PoolDefinition pool) => PoolKeys(pool)[1];

    /// <summary>KEYS of debit.lua for one pool: the usage hash and the state hash, built once per pool. Callers must not change the array.</summary>
    public RedisKey[] PoolKeys(PoolDefinition pool) => KeySet(pool).UsageAndState;

    /// <summary>KEYS of debit.lua for one pool with the ledger on: usage, state and event stream. Callers must not change the array.</summary>
    public RedisKey[] PoolKeysWithEvents(PoolDefinition pool) => KeySet(pool).UsageStateAndEvents;

    /// <summary><c>qp:{vendor-daily}:usage</c> by name: the pool's counters, for a pool tagged with <paramref name="hashTag"/> (default: its own name).</summary>
    public RedisKey PoolUsage(string pool, string? hashTag = null) => KeySet(hashTag ?? pool, pool).UsageAndState[0];

    /// <summary><c>qp:{vendor-daily}:events</c> by name: the pool's usage events, for a pool tagged with <paramref name="hashTag"/> (default: its own name).</summary>
    public RedisKey EventStream(string pool, string? hashTag = null) => KeySet(hashTag ?? pool, pool).UsageStateAndEvents[2];

    private PoolKeySet KeySet(PoolDefinition pool) => KeySet(pool.HashTag, pool.Name);

    private PoolKeySet KeySet(string hashTag, string name) => _pools.GetOrAdd(
        (hashTag, name),
        static (pool, prefix) =>
        {
            var tagged = pool.Tag == pool.Name ? $"{{{pool.Name}}}" : $"{{{pool.Tag}}}:{pool.Name}";
            RedisKey usage = $"{prefix}{tagged}:usage", state = $"{prefix}{tagged}:state", events = $"{prefix}{tagged}:events";
            return new PoolKeySet([usage, state], [usage, state, events]);
        },
        Prefix);

    /// <summary><c>qp:{vendor-daily}:lease:t:prod</c>: the sorted set of a node's MaxInFlight leases.</summary>
    public RedisKey LeaseKey(PoolDefinition pool, QuotaNode node)
    {
        var usage = (string)PoolKeys(pool)[0]!;
        return $"{usage[..^":usage".Length]}:lease:{node.UsageField}";
    }

    /// <summary><c>qp:{vendor-daily}:op:&lt;id&gt;</c>: the marker of an adjustment that must apply once (same slot as the pool's counters).</summary>
    public RedisKey OperationKey(PoolDefinition pool, string operationId)
    {
        var usage = (string)PoolKeys(pool)[0]!;
        return $"{usage[..^":usage".Length]}:op:{operationId}";
    }

    /// <summary><c>qp:{vendor-daily}:events</c>: the pool's usage events on their way to the ledger.</summary>
    public RedisKey EventStream(PoolDefinition pool) => KeySet(pool).UsageStateAndEvents[2];

    private sealed record PoolKeySet(RedisKey[] UsageAndState, RedisKey[] UsageStateAndEvents);
}
