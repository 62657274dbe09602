using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>The C# side of <c>ack.lua</c>: acknowledges a committed ledger batch and trims what is done from the stream, in one step.</summary>
internal static class AckScript
{
    public static readonly EmbeddedScript Script = new("ack.lua");

    /// <returns>How many entries left the stream.</returns>
    public static async Task<long> EvaluateAsync(IDatabase database, RedisKey stream, string group, IEnumerable<RedisValue> entryIds) =>
        (long)(await database.ScriptEvaluateAsync(Script.Source, [stream], [group, .. entryIds]).ConfigureAwait(false));
}
