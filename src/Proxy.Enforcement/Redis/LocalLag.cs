using System.Diagnostics;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// How late this process runs the work it queues: a timer re-armed every 10 ms notes how long after its
/// due time its callback ran (the timer thread and the thread pool's queue, the same queue a Redis reply's
/// socket completion waits in). Under a burst on a busy machine that is tens of milliseconds, and a reply
/// Redis sent in time waits that long to be read: time that is the proxy's own queueing, not the store's.
/// The largest lag seen over the last quarter to half second; zero when the process keeps up. One probe
/// per process (<see cref="Shared"/>): it measures the process, whatever reads it.
/// </summary>
internal sealed class LocalLag
{
    private static readonly Lazy<LocalLag> Instance = new(() => new LocalLag());

    /// <summary>The process's probe, started on first use.</summary>
    public static LocalLag Shared => Instance.Value;

    private static readonly TimeSpan Period = TimeSpan.FromMilliseconds(10);
    private static readonly long WindowTicks = Stopwatch.Frequency / 4;

    private readonly Timer _timer;
    private long _due;
    private long _windowStart = Stopwatch.GetTimestamp();
    private long _current;
    private long _previous;

    private LocalLag()
    {
        _due = Stopwatch.GetTimestamp() + (long)(Period.TotalSeconds * Stopwatch.Frequency);
        _timer = new Timer(static state => ((LocalLag)state!).Tick(), this, Period, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The largest lag of the last quarter to half second.</summary>
    public TimeSpan Recent => Stopwatch.GetElapsedTime(0, Math.Max(Volatile.Read(ref _current), Volatile.Read(ref _previous)));

    private void Tick()
    {
        var now = Stopwatch.GetTimestamp();
        var lag = Math.Max(0, now - _due);
        if (now - _windowStart > WindowTicks)
        {
            Volatile.Write(ref _previous, Volatile.Read(ref _current));
            Volatile.Write(ref _current, lag);
            _windowStart = now;
        }
        else if (lag > _current)
        {
            Volatile.Write(ref _current, lag);
        }

        _due = now + (long)(Period.TotalSeconds * Stopwatch.Frequency);
        _timer.Change(Period, Timeout.InfiniteTimeSpan);
    }
}
