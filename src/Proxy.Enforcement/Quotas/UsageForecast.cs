using System.Collections.Concurrent;

namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// Each node's burn rate and when, at that rate, it runs out within its window. Fed with the store's counters
/// (the usage refresh reads every pool every <c>Quota:Metrics:UsageRefreshInterval</c>), so every replica sees
/// the whole fleet's spending. For the first <see cref="TimeConstant"/> of a window (or of this replica's
/// reads) the rate is the average since its first read; then an exponentially weighted moving average of
/// what each read adds, with that time constant (a change shows within a minute or two and an old burst fades). A node runs
/// out when what its tenant could spend now (<see cref="PoolUsage.Available"/>: guarantees and higher-priority
/// allocations of others included) is gone at that rate; a run-out after the window ends is no forecast.
/// </summary>
internal sealed class UsageForecast
{
    public static readonly TimeSpan TimeConstant = TimeSpan.FromMinutes(5);

    private readonly ConcurrentDictionary<(string Pool, string Node), Track> _tracks = new();

    /// <summary>Per pool: whether any of its nodes is forecast to run out (set by each read).</summary>
    private readonly ConcurrentDictionary<string, bool> _poolRunsOut = new(StringComparer.Ordinal);

    /// <summary>Whether any node of any pool is forecast to run out: when none is (the usual case), a request's lookup ends here.</summary>
    private volatile bool _anyRunsOut;

    /// <summary>Takes in one read of <paramref name="pool"/>'s counters, made at <paramref name="now"/>.</summary>
    public void Observe(PoolDefinition pool, PoolUsage usage, DateTimeOffset now)
    {
        var runsOut = false;
        foreach (var node in pool.Nodes.Values.Prepend(pool.Root))
        {
            var track = _tracks.GetOrAdd((pool.Name, node.Path), static _ => new Track());
            lock (track)
            {
                track.Observe(usage.Window, usage.Used(node), usage.Available(node), now);
                runsOut |= track.Forecast?.ExhaustsAt is not null;
            }
        }

        _poolRunsOut[pool.Name] = runsOut;
        _anyRunsOut = _poolRunsOut.Values.Any(value => value);
    }

    /// <summary>The node's forecast, or null before two reads of the same window have given it a rate.</summary>
    public Forecast? For(PoolDefinition pool, QuotaNode node)
    {
        if (!_tracks.TryGetValue((pool.Name, node.Path), out var track))
        {
            return null;
        }

        lock (track)
        {
            return track.Forecast;
        }
    }

    /// <summary>
    /// The soonest run-out on a request's paths: the pool and node that run out first, and when, or null
    /// when none is forecast within its window.
    /// </summary>
    public (PoolDefinition Pool, QuotaNode Node, DateTimeOffset ExhaustsAt)? Soonest(IReadOnlyList<QuotaDebit> debits)
    {
        if (!_anyRunsOut)
        {
            return null;
        }

        (PoolDefinition, QuotaNode, DateTimeOffset)? soonest = null;
        for (var i = 0; i < debits.Count; i++)
        {
            var debit = debits[i];
            for (var node = debit.Tenant; node is not null; node = node.Parent)
            {
                if (For(debit.Pool, node)?.ExhaustsAt is { } at && (soonest is not { } current || at < current.Item3))
                {
                    soonest = (debit.Pool, node, at);
                }
            }
        }

        return soonest;
    }

    /// <param name="CreditsPerSecond">The burn rate.</param>
    /// <param name="ExhaustsAt">When the node runs out at that rate, if before its window ends.</param>
    internal sealed record Forecast(double CreditsPerSecond, DateTimeOffset? ExhaustsAt);

    private sealed class Track
    {
        private long _windowStartMs = long.MinValue;
        private long _used;
        private DateTimeOffset _at;
        private long _firstUsed;
        private DateTimeOffset _firstAt;
        private double? _rate;

        public Forecast? Forecast { get; private set; }

        public void Observe(WindowBounds window, long used, long available, DateTimeOffset now)
        {
            if (window.StartMs != _windowStartMs)
            {
                // A new window (or the first read): its counters start again, and so does the rate.
                (_windowStartMs, _used, _at, _firstUsed, _firstAt, _rate, Forecast) = (window.StartMs, used, now, used, now, null, null);
                return;
            }

            var seconds = (now - _at).TotalSeconds;
            if (seconds <= 0)
            {
                return;
            }

            // Refunds and resets lower the counters: no negative burn.
            var sinceFirst = (now - _firstAt).TotalSeconds;
            _rate = _rate is not { } rate || sinceFirst <= TimeConstant.TotalSeconds
                ? Math.Max(0, used - _firstUsed) / sinceFirst
                : rate + ((1 - Math.Exp(-seconds / TimeConstant.TotalSeconds)) * ((Math.Max(0, used - _used) / seconds) - rate));
            (_used, _at) = (used, now);
            DateTimeOffset? exhaustsAt = null;
            if (_rate > 0)
            {
                var at = now + TimeSpan.FromSeconds(Math.Min(available / _rate.Value, TimeSpan.FromDays(400).TotalSeconds));
                exhaustsAt = at < window.End ? at : null;
            }

            Forecast = new Forecast(_rate.Value, exhaustsAt);
        }
    }
}
