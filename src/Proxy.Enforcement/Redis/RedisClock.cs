namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// The Redis server's clock as this proxy can know it, so that every decision carries a deadline on the
/// clock that will judge it. Each reply says when Redis ran the script; that moment is before the reply
/// arrived, so <c>redis time − arrival time</c> is never above the true offset, and the largest such
/// sample of the last few seconds estimates it from below. A deadline from it errs early (a decision may
/// be refused slightly before the proxy would have stopped waiting), never late. A late reply the
/// estimate misses is found and refunded by <see cref="RedisQuotaStore"/>. Lock-free: every decision
/// reads it and every reply writes it.
/// </summary>
internal sealed class RedisClock(TimeProvider timeProvider)
{
    /// <summary>How long one estimate stands before fresher samples replace it (a stepped clock is followed within twice this).</summary>
    private static readonly long WindowMicros = (long)TimeSpan.FromSeconds(5).TotalMicroseconds;

    private const long Unknown = long.MinValue;

    private long _windowStart;
    private long _current = Unknown;
    private long _previous = Unknown;

    private long LocalMicros() => Micros(timeProvider.GetUtcNow());

    /// <summary>A reply came back saying Redis ran the call at <paramref name="redisNowMs"/> (Unix ms on its clock).</summary>
    public void Observe(long redisNowMs)
    {
        var local = LocalMicros();
        var sample = (redisNowMs * 1000) - local;
        var start = Volatile.Read(ref _windowStart);
        if (local - start > WindowMicros && Interlocked.CompareExchange(ref _windowStart, local, start) == start)
        {
            // One caller turns the window over; a sample racing with it may land in either window.
            Volatile.Write(ref _previous, Volatile.Read(ref _current));
            Volatile.Write(ref _current, sample);
            return;
        }

        var current = Volatile.Read(ref _current);
        while (sample > current)
        {
            var seen = Interlocked.CompareExchange(ref _current, sample, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }

    /// <summary>
    /// The Redis server's Unix µs by which a call sent at <paramref name="now"/> (this proxy's clock) must
    /// have run for its answer to be awaited <paramref name="budget"/> from then; 0 (no deadline) until a
    /// reply has been seen.
    /// </summary>
    public long DeadlineMicros(DateTimeOffset now, TimeSpan budget)
    {
        var offset = Math.Max(Volatile.Read(ref _current), Volatile.Read(ref _previous));
        return offset == Unknown ? 0 : Micros(now) + (long)budget.TotalMicroseconds + offset;
    }

    private static long Micros(DateTimeOffset instant) => (instant - DateTimeOffset.UnixEpoch).Ticks / TimeSpan.TicksPerMicrosecond;
}
