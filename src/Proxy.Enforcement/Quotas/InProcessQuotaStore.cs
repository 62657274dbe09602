namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// Counters in this process's memory, with the same rule and the same field layout as <c>debit.lua</c>
/// (<see cref="TreeAdmission"/>). It serves a single replica (the embedded default) and is the reference
/// model the Lua script is tested against.
/// </summary>
internal sealed class InProcessQuotaStore(TimeProvider timeProvider) : IQuotaStore
{
    private readonly Dictionary<string, PoolCounters> _pools = new(StringComparer.Ordinal);

    public ValueTask<QuotaDecision> DebitAsync(QuotaDebit debit, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        var window = debit.Pool.Locate(now);
        lock (_pools)
        {
            var counters = CountersFor(debit.Pool.Name, window);
            var outcome = TreeAdmission.Decide(debit.Tenant, debit.Cost, counters.Fields);
            return ValueTask.FromResult(new QuotaDecision(
                outcome.Admitted,
                outcome.LimitedBy,
                outcome.LimitingNode,
                counters.Fields.GetValueOrDefault(debit.Tenant.UsageField),
                counters.Fields.GetValueOrDefault(QuotaNode.RootField),
                debit.Tenant.EffectiveLimit,
                outcome.Remaining,
                counters.Window,
                now.ToUnixTimeMilliseconds(),
                outcome.OverageCredits,
                outcome.SoftLimitNode,
                outcome.SoftLimitCrossed,
                outcome.Shadow));
        }
    }

    /// <summary>A copy of one pool's counters in its current window (tests compare it with Redis's hash).</summary>
    internal Dictionary<string, long> Snapshot(string pool)
    {
        lock (_pools)
        {
            return _pools.TryGetValue(pool, out var counters) ? new Dictionary<string, long>(counters.Fields, StringComparer.Ordinal) : [];
        }
    }

    private PoolCounters CountersFor(string pool, WindowBounds window)
    {
        if (!_pools.TryGetValue(pool, out var counters))
        {
            counters = new PoolCounters();
            _pools.Add(pool, counters);
        }

        // A new window starts from zero: no reset job, the first decision in it clears the counters.
        if (window.StartMs > counters.Window.StartMs)
        {
            counters.Window = window;
            counters.Fields.Clear();
        }

        return counters;
    }

    private sealed class PoolCounters
    {
        public WindowBounds Window { get; set; } = new(long.MinValue, long.MinValue);

        public Dictionary<string, long> Fields { get; } = new(StringComparer.Ordinal);
    }
}
