using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>The C# side of <c>snapshot.lua</c>: a hash tag's pools, their counters and their streams, read at one instant.</summary>
internal static class SnapshotScript
{
    public static readonly EmbeddedScript Script = new("snapshot.lua");

    /// <summary>A stream longer than this (a ledger away for a long while) is not read: its pool is not compared.</summary>
    public const int MostEntries = 100_000;

    /// <returns>The server's clock at the snapshot (Unix ms), and each pool as it held.</returns>
    public static async Task<(long NowMs, PoolHolding[] Pools)> ReadAsync(IDatabase database, RedisKeys keys, IReadOnlyList<PoolDefinition> pools)
    {
        var redisKeys = pools.SelectMany(pool => new[] { keys.PoolUsage(pool), keys.EventStream(pool) }).ToArray();
        var reply = (RedisResult[])(await database.ScriptEvaluateAsync(Script.Source, redisKeys, [pools.Count, MostEntries]).ConfigureAwait(false))!;
        var holdings = new PoolHolding[pools.Count];
        for (var p = 0; p < pools.Count; p++)
        {
            var hash = (RedisResult[])reply[1 + 3 * p]!;
            var counters = new Dictionary<string, long>(StringComparer.Ordinal);
            for (var i = 0; i + 1 < hash.Length; i += 2)
            {
                if (long.TryParse((string?)hash[i + 1], System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var value))
                {
                    counters[(string)hash[i]!] = value;
                }
            }

            var start = counters.TryGetValue("start", out var held) ? held : (long?)null;
            var stream = keys.EventStream(pools[p]);
            var entries = reply[3 + 3 * p];
            IReadOnlyList<UsageEvent>? pending = entries.Resp2Type == ResultType.Array
                ? [.. ((RedisResult[])entries!).Select(entry => UsageEventFormat.Read(pools[p].Name, stream, Entry(entry)))]
                : null;
            holdings[p] = new PoolHolding(pools[p], start, counters, (string)reply[2 + 3 * p]!, pending);
        }

        return ((long)reply[0], holdings);
    }

    private static StreamEntry Entry(RedisResult entry)
    {
        var parts = (RedisResult[])entry!;
        var fields = (RedisResult[])parts[1]!;
        var values = new NameValueEntry[fields.Length / 2];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = new NameValueEntry((string)fields[2 * i]!, (RedisValue)fields[2 * i + 1]);
        }

        return new StreamEntry((string)parts[0]!, values);
    }
}
