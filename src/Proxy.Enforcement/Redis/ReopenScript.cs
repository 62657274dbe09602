using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>The C# side of <c>reopen.lua</c>: ends a vendor closure on an operator's word (rare, so sent as a plain EVAL by text).</summary>
internal static class ReopenScript
{
    public static readonly EmbeddedScript Script = new("reopen.lua");

    /// <returns>The closure that was in force (Unix ms), 0 if none.</returns>
    public static async Task<long> EvaluateAsync(IDatabase database, RedisKeys keys, PoolDefinition pool) =>
        (long)(await database.ScriptEvaluateAsync(Script.Source, [keys.PoolUsage(pool)]).ConfigureAwait(false));
}
