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
        var nowMicros = (now - DateTimeOffset.UnixEpoch).Ticks / TimeSpan.TicksPerMicrosecond;
        var window = debit.Pool.Locate(now);
        lock (_pools)
        {
            var counters = CountersFor(debit.Pool.Name, window, nowMicros / 1000);
            var outcome = TreeAdmission.Decide(debit.Tenant, debit.Cost, counters.Fields, counters.State, nowMicros);
            return ValueTask.FromResult(new QuotaDecision(
                outcome.Admitted,
                outcome.LimitedBy,
                outcome.LimitingNode,
                counters.Fields.GetValueOrDefault(debit.Tenant.UsageField),
                counters.Fields.GetValueOrDefault(QuotaNode.RootField),
                debit.Tenant.EffectiveLimit,
                outcome.Remaining,
                counters.Window,
                nowMicros / 1000,
                outcome.OverageCredits,
                outcome.SoftLimitNode,
                outcome.SoftLimitCrossed,
                outcome.Shadow,
                outcome.RetryAfterMicros));
        }
    }

    public ValueTask CloseAsync(PoolDefinition pool, long untilMs, CancellationToken cancellationToken)
    {
        lock (_pools)
        {
            var fields = Counters(pool.Name).Fields;
            fields[TreeAdmission.ClosedField] = Math.Max(untilMs, fields.GetValueOrDefault(TreeAdmission.ClosedField));
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>A copy of one pool's counters in its current window (tests compare it with Redis's hash).</summary>
    internal Dictionary<string, long> Snapshot(string pool)
    {
        lock (_pools)
        {
            return _pools.TryGetValue(pool, out var counters) ? new Dictionary<string, long>(counters.Fields, StringComparer.Ordinal) : [];
        }
    }

    /// <summary>A copy of one pool's fields that outlive windows (GCRA arrival times).</summary>
    internal Dictionary<string, long> SnapshotState(string pool)
    {
        lock (_pools)
        {
            return _pools.TryGetValue(pool, out var counters) ? new Dictionary<string, long>(counters.State, StringComparer.Ordinal) : [];
        }
    }

    private PoolCounters Counters(string pool)
    {
        if (!_pools.TryGetValue(pool, out var counters))
        {
            counters = new PoolCounters();
            _pools.Add(pool, counters);
        }

        return counters;
    }

    private PoolCounters CountersFor(string pool, WindowBounds window, long nowMs)
    {
        var counters = Counters(pool);

        // A new window starts from zero: no reset job, the first decision in it clears the counters. A
        // closure still in the future is carried over.
        if (window.StartMs > counters.Window.StartMs)
        {
            var closed = counters.Fields.GetValueOrDefault(TreeAdmission.ClosedField);
            counters.Window = window;
            counters.Fields.Clear();
            if (closed > nowMs)
            {
                counters.Fields[TreeAdmission.ClosedField] = closed;
            }
        }

        return counters;
    }

    private sealed class PoolCounters
    {
        public WindowBounds Window { get; set; } = new(long.MinValue, long.MinValue);

        public Dictionary<string, long> Fields { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, long> State { get; } = new(StringComparer.Ordinal);
    }
}
