using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>The C# side of <c>renew.lua</c>: a request still in flight keeps its lease for another TTL.</summary>
internal static class RenewScript
{
    public static readonly EmbeddedScript Script = new("renew.lua");

    /// <returns>How many sets still held the lease.</returns>
    /// <param name="nowMs">The proxy's clock (tests only), or 0: the server's.</param>
    public static async Task<long> EvaluateAsync(IDatabase database, RedisKeys keys, QuotaLease lease, long ttlMs, long nowMs = 0) =>
        (long)(await database.ScriptEvaluateAsync(Script.Source, ReleaseScript.LeaseKeys(keys, lease), [lease.Id, ttlMs, nowMs]).ConfigureAwait(false));
}
