namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// Every Redis key the proxy uses is built here. The pool name is the hash tag, so every key one decision
/// touches lives in one cluster slot.
/// </summary>
internal sealed class RedisKeys(string prefix)
{
    public string Prefix { get; } = prefix;

    /// <summary><c>qp:{vendor-daily}:usage</c>: the pool's counters for its current window.</summary>
    public string PoolUsage(string pool) => $"{Prefix}{{{pool}}}:usage";
}
