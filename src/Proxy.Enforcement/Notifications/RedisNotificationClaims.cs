using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Notifications;

/// <summary>Claims as Redis keys (<c>{prefix}notify:&lt;id&gt;</c>, <c>SET NX</c> with the claim's lifetime): every replica asks the same Redis.</summary>
internal sealed class RedisNotificationClaims(IConnectionMultiplexer connection, string keyPrefix) : INotificationClaims
{
    public Task<bool> ClaimAsync(string id, TimeSpan lifetime, CancellationToken cancellationToken) =>
        connection.GetDatabase().StringSetAsync($"{keyPrefix}notify:{id}", "1", lifetime, When.NotExists).WaitAsync(cancellationToken);
}
