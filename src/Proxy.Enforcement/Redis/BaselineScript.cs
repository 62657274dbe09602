using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>The C# side of <c>baseline.lua</c>: gives one hash tag's pools their counters back, once (rare: sent by text).</summary>
internal static class BaselineScript
{
    public static readonly EmbeddedScript Script = new("baseline.lua");

    /// <summary>What debit.lua answers, as an error, on a tag that has no baseline.</summary>
    public const string MissingError = "QP_NO_BASELINE";

    /// <param name="pools">Per pool: its window, its stream's last id at the snapshot the counters were read with, and the counters.</param>
    /// <returns>
    /// Per pool what was done; null when the tag already had a baseline (another replica set it); empty when
    /// an event was written to a stream since the snapshot (nothing was done: read again).
    /// </returns>
    public static async Task<BaselineOutcome[]?> EvaluateAsync(
        IDatabase database, RedisKeys keys, string tag, IReadOnlyList<(PoolDefinition Pool, WindowBounds Window, string LastId, IReadOnlyDictionary<string, long> Counters)> pools, long nowMs)
    {
        var redisKeys = new List<RedisKey> { keys.Baseline(tag) };
        var args = new List<RedisValue> { nowMs, pools.Count };
        redisKeys.AddRange(pools.Select(p => keys.PoolUsage(p.Pool)));
        redisKeys.AddRange(pools.Select(p => keys.EventStream(p.Pool)));
        foreach (var (pool, window, lastId, counters) in pools)
        {
            args.AddRange([window.StartMs, window.EndMs, lastId, counters.Count]);
            foreach (var (field, value) in counters)
            {
                args.AddRange([field, value]);
            }
        }

        var reply = (long[])(await database.ScriptEvaluateAsync(Script.Source, [.. redisKeys], [.. args]).ConfigureAwait(false))!;
        return reply switch
        {
            [] => null,
            [-1] => [],
            _ => [.. reply.Select(value => (BaselineOutcome)value)],
        };
    }
}
