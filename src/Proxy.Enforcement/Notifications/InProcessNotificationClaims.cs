using System.Collections.Concurrent;

namespace QuotaProxy.Enforcement.Notifications;

/// <summary>The embedded default's claims: one replica, in its memory (an expired claim is dropped when next claimed).</summary>
internal sealed class InProcessNotificationClaims(TimeProvider time) : INotificationClaims
{
    private readonly ConcurrentDictionary<string, DateTimeOffset> _claims = new(StringComparer.Ordinal);

    public Task<bool> ClaimAsync(string id, TimeSpan lifetime, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        foreach (var expired in _claims.Where(claim => claim.Value <= now).Select(claim => claim.Key).ToList())
        {
            _claims.TryRemove(expired, out _);
        }

        return Task.FromResult(_claims.TryAdd(id, now + lifetime));
    }
}
