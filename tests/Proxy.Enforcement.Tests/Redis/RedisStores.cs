using Microsoft.Extensions.Logging.Abstractions;
using QuotaProxy.Enforcement.Redis;
using QuotaProxy.Testing;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Tests.Redis;

internal static class RedisStores
{
    /// <summary>A Redis store under its own key prefix; with a clock, that clock decides windows instead of the server's.</summary>
    public static RedisQuotaStore Create(IConnectionMultiplexer connection, TimeProvider? clock = null, string? prefix = null) => new(
        connection,
        new RedisKeys(prefix ?? RedisFixture.NewKeyPrefix()),
        TimeSpan.FromSeconds(2),
        clock ?? TimeProvider.System,
        NullLogger<RedisQuotaStore>.Instance,
        useProxyClock: clock is not null);
}
