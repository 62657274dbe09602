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
    public RedisKey PoolUsage(PoolDefinition pool) => KeySet(pool).Usage;

    /// <summary><c>qp:{vendor-daily}:state</c>: the pool's fields that outlive windows (GCRA arrival times).</summary>
    public RedisKey PoolState(PoolDefinition pool) => KeySet(pool).State;

    /// <summary>
    /// KEYS of debit.lua for a one-pool decision without leases: usage and state, with the ledger on the event
    /// stream, and last the tag's baseline; built once per pool. Callers must not change the array.
    /// </summary>
    public RedisKey[] DebitKeys(PoolDefinition pool, bool events) => events ? KeySet(pool).DebitWithEvents : KeySet(pool).Debit;

    /// <summary><c>qp:{vendor-daily}:usage</c> by name: the pool's counters, for a pool tagged with <paramref name="hashTag"/> (default: its own name).</summary>
    public RedisKey PoolUsage(string pool, string? hashTag = null) => KeySet(hashTag ?? pool, pool).Usage;

    /// <summary><c>qp:{vendor-daily}:events</c> by name: the pool's usage events, for a pool tagged with <paramref name="hashTag"/> (default: its own name).</summary>
    public RedisKey EventStream(string pool, string? hashTag = null) => KeySet(hashTag ?? pool, pool).Events;

    /// <summary>
    /// <c>qp:{vendor-daily}:baseline</c>: set once the counters of the pools tagged <paramref name="hashTag"/>
    /// are known good (fresh, or restored from the ledger); a Redis that lost its data has lost it too.
    /// </summary>
    public RedisKey Baseline(string hashTag) => $"{Prefix}{{{hashTag}}}:baseline";

    private PoolKeySet KeySet(PoolDefinition pool) => KeySet(pool.HashTag, pool.Name);

    private PoolKeySet KeySet(string hashTag, string name) => _pools.GetOrAdd(
        (hashTag, name),
        static (pool, keys) =>
        {
            var tagged = pool.Tag == pool.Name ? $"{{{pool.Name}}}" : $"{{{pool.Tag}}}:{pool.Name}";
            RedisKey usage = $"{keys.Prefix}{tagged}:usage", state = $"{keys.Prefix}{tagged}:state", events = $"{keys.Prefix}{tagged}:events";
            var baseline = keys.Baseline(pool.Tag);
            return new PoolKeySet(usage, state, events, [usage, state, baseline], [usage, state, events, baseline]);
        },
        this);

    /// <summary><c>qp:{vendor-daily}:lease:t:prod</c>: the sorted set of a node's MaxInFlight leases.</summary>
    public RedisKey LeaseKey(PoolDefinition pool, QuotaNode node)
    {
        var usage = (string)PoolUsage(pool)!;
        return $"{usage[..^":usage".Length]}:lease:{node.UsageField}";
    }

    /// <summary><c>qp:{vendor-daily}:op:&lt;id&gt;</c>: the marker of an adjustment that must apply once (same slot as the pool's counters).</summary>
    public RedisKey OperationKey(PoolDefinition pool, string operationId)
    {
        var usage = (string)PoolUsage(pool)!;
        return $"{usage[..^":usage".Length]}:op:{operationId}";
    }

    /// <summary><c>qp:{vendor-daily}:leases</c>: the pool's live credit leases, lease id → its end and unspent credits (lease-record.lua).</summary>
    public RedisKey LeaseRecords(PoolDefinition pool)
    {
        var usage = (string)PoolUsage(pool)!;
        return $"{usage[..^":usage".Length]}:leases";
    }

    /// <summary><c>qp:{vendor-daily}:events</c>: the pool's usage events on their way to the ledger.</summary>
    public RedisKey EventStream(PoolDefinition pool) => KeySet(pool).Events;

    private sealed record PoolKeySet(RedisKey Usage, RedisKey State, RedisKey Events, RedisKey[] Debit, RedisKey[] DebitWithEvents);
}
