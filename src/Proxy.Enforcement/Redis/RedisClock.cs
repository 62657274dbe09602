namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// The Redis server's clock as this proxy can know it, so that every decision carries a deadline on the
/// clock that will judge it. Each reply says when Redis ran the script; that moment is before the reply
/// arrived, so <c>redis time − arrival time</c> is never above the true offset, and the largest such
/// sample of the last few seconds estimates it from below. A deadline from it errs early (a decision may
/// be refused slightly before the proxy would have stopped waiting), never late. A late reply the
/// estimate misses is found and refunded by <see cref="RedisQuotaStore"/>.
/// </summary>
internal sealed class RedisClock(TimeProvider timeProvider)
{
    /// <summary>How long one estimate stands before fresher samples replace it (a stepped clock is followed within twice this).</summary>
    private static readonly long WindowMicros = (long)TimeSpan.FromSeconds(5).TotalMicroseconds;

    private readonly Lock _gate = new();
    private long _windowStart;
    private long _current = long.MinValue;
    private long _previous = long.MinValue;

    public long LocalMicros() => (timeProvider.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks / TimeSpan.TicksPerMicrosecond;

    /// <summary>A reply came back saying Redis ran the call at <paramref name="redisNowMs"/> (Unix ms on its clock).</summary>
    public void Observe(long redisNowMs)
    {
        var local = LocalMicros();
        var sample = (redisNowMs * 1000) - local;
        lock (_gate)
        {
            if (local - _windowStart > WindowMicros)
            {
                _previous = _current;
                _current = sample;
                _windowStart = local;
            }
            else if (sample > _current)
            {
                _current = sample;
            }
        }
    }

    /// <summary>
    /// The Redis server's Unix µs by which a call sent now must have run for its answer to be awaited
    /// <paramref name="budget"/> from now; 0 (no deadline) until a reply has been seen.
    /// </summary>
    public long DeadlineMicros(TimeSpan budget)
    {
        long offset;
        lock (_gate)
        {
            offset = Math.Max(_current, _previous);
        }

        return offset == long.MinValue ? 0 : LocalMicros() + (long)budget.TotalMicroseconds + offset;
    }
}
