using System.Globalization;
using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// Wait tickets in one sorted set per pool (<c>{prefix}wait:&lt;pool&gt;</c>): member <c>&lt;priority&gt;:&lt;replica&gt;</c>,
/// score its expiry (Unix ms, on this replica's clock: tickets live half a second and are renewed, so clock
/// drift of that order only shortens or lengthens one). Expired members are skipped and swept.
/// </summary>
internal sealed class RedisWaitTickets(IConnectionMultiplexer connection, string keyPrefix, TimeProvider time) : IWaitTickets
{
    private readonly string _replica = Guid.NewGuid().ToString("N")[..12];
    private readonly Dictionary<string, string> _held = new(StringComparer.Ordinal);

    public async Task HoldAsync(string pool, int? priority, TimeSpan lifetime, CancellationToken cancellationToken)
    {
        var key = Key(pool);
        var database = connection.GetDatabase();
        string? previous;
        lock (_held)
        {
            _held.TryGetValue(pool, out previous);
        }

        var member = priority is { } p ? $"{p.ToString(CultureInfo.InvariantCulture)}:{_replica}" : null;
        if (previous is not null && previous != member)
        {
            await database.SortedSetRemoveAsync(key, previous).WaitAsync(cancellationToken);
        }

        if (member is not null)
        {
            var now = time.GetUtcNow().ToUnixTimeMilliseconds();
            await database.SortedSetAddAsync(key, member, now + (long)lifetime.TotalMilliseconds).WaitAsync(cancellationToken);
            await database.SortedSetRemoveRangeByScoreAsync(key, double.NegativeInfinity, now).WaitAsync(cancellationToken);
            await database.KeyExpireAsync(key, lifetime + TimeSpan.FromMinutes(1)).WaitAsync(cancellationToken);
        }

        lock (_held)
        {
            if (member is null)
            {
                _held.Remove(pool);
            }
            else
            {
                _held[pool] = member;
            }
        }
    }

    public async Task<int?> BestOtherAsync(string pool, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var members = await connection.GetDatabase().SortedSetRangeByScoreAsync(Key(pool), now, double.PositiveInfinity).WaitAsync(cancellationToken);
        int? best = null;
        foreach (var member in members.Select(m => (string)m!))
        {
            var colon = member.IndexOf(':', StringComparison.Ordinal);
            if (member[(colon + 1)..] != _replica && int.TryParse(member[..colon], NumberStyles.None, CultureInfo.InvariantCulture, out var priority) && (best is null || priority < best))
            {
                best = priority;
            }
        }

        return best;
    }

    private string Key(string pool) => $"{keyPrefix}wait:{pool}";
}
