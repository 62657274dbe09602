using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>The C# side of <c>release.lua</c>: a response has ended, its lease leaves every in-flight set that holds it.</summary>
internal static class ReleaseScript
{
    public static readonly EmbeddedScript Script = new("release.lua");

    /// <returns>How many sets held the lease.</returns>
    public static async Task<long> EvaluateAsync(IDatabase database, RedisKeys keys, QuotaLease lease) =>
        (long)(await database.ScriptEvaluateAsync(Script.Source, LeaseKeys(keys, lease), [lease.Id]).ConfigureAwait(false));

    /// <summary>KEYS: the lease sets of every node that holds the lease.</summary>
    internal static RedisKey[] LeaseKeys(RedisKeys keys, QuotaLease lease) => [.. lease.Debits.SelectMany(d => PathArguments.For(keys, d).LeaseKeys)];
}
