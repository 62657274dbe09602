using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>The C# side of <c>close.lua</c>: closes a pool after a vendor 429 (rare, so sent as a plain EVAL by text).</summary>
internal static class CloseScript
{
    public static readonly EmbeddedScript Script = new("close.lua");

    /// <returns>The closure now in force (Unix ms): <paramref name="untilMs"/>, or a later one already there.</returns>
    public static async Task<long> EvaluateAsync(IDatabase database, RedisKeys keys, PoolDefinition pool, long untilMs) =>
        (long)(await database.ScriptEvaluateAsync(Script.Source, [keys.PoolUsage(pool)], [untilMs]).ConfigureAwait(false));
}
