namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// Counters in this process's memory, with the same rule and the same field layout as <c>debit.lua</c>
/// (<see cref="TreeAdmission"/>). It serves a single replica (the embedded default) and is the reference
/// model the Lua script is tested against.
/// </summary>
internal sealed class InProcessQuotaStore(TimeProvider timeProvider, TimeSpan? leaseTtl = null) : IQuotaStore
{
    private readonly long _leaseMs = (long)(leaseTtl ?? QuotaLease.DefaultTtl).TotalMilliseconds;

    private readonly Dictionary<string, PoolCounters> _pools = new(StringComparer.Ordinal);

    /// <remarks>The in-process store keeps no ledger (<paramref name="usage"/> is not recorded): the ledger needs the Redis store.</remarks>
    public ValueTask<RouteDecision> DebitAsync(IReadOnlyList<QuotaDebit> debits, UsageContext? usage, CancellationToken cancellationToken) =>
        Decide(debits, usage, peek: false);

    public ValueTask<RouteDecision> PeekAsync(IReadOnlyList<QuotaDebit> debits, CancellationToken cancellationToken) =>
        Decide(debits, usage: null, peek: true);

    /// <param name="peek">Decide and apply nothing (a new window's counters are still cleared, as any decision clears them).</param>
    private ValueTask<RouteDecision> Decide(IReadOnlyList<QuotaDebit> debits, UsageContext? usage, bool peek)
    {
        var now = timeProvider.GetUtcNow();
        var nowMicros = (now - DateTimeOffset.UnixEpoch).Ticks / TimeSpan.TicksPerMicrosecond;
        var nowMs = nowMicros / 1000;
        var claim = usage?.Idempotency;
        var idempotencyField = claim is not null ? IdempotencyField(debits[0].Tenant, claim.Key) : null;
        lock (_pools)
        {
            var counters = new PoolCounters[debits.Count];
            var outcomes = new TreeOutcome[debits.Count];
            var limiting = -1;
            for (var i = 0; i < debits.Count; i++)
            {
                var debit = debits[i];
                counters[i] = CountersFor(debit.Pool.Name, debit.Pool.Locate(now), nowMs);
                outcomes[i] = TreeAdmission.Evaluate(debit.Tenant, debit.Cost, counters[i].Fields, counters[i].State, counters[i].Leases, nowMicros, idempotencyField, claim);
                if (!outcomes[i].Admitted && limiting < 0)
                {
                    limiting = i;
                }
            }

            var admitted = limiting < 0;
            var lease = admitted && !peek && QuotaLease.Needed(debits) ? new QuotaLease(QuotaLease.NewId(), debits) : null;
            var decisions = new QuotaDecision[debits.Count];
            for (var i = 0; i < debits.Count; i++)
            {
                var (debit, outcome, fields) = (debits[i], outcomes[i], counters[i].Fields);
                if (admitted && !peek)
                {
                    TreeAdmission.Apply(debit.Tenant, debit.Cost, fields, counters[i].State, counters[i].Leases, nowMicros, lease?.Id, _leaseMs, idempotencyField, claim, outcome.Replayed);
                }

                var debited = admitted && !outcome.Replayed ? debit.Cost : 0;
                // A peek answers as a debit would: used as if debited.
                var unapplied = peek ? debited : 0;
                decisions[i] = new QuotaDecision(
                    outcome.Admitted,
                    outcome.LimitedBy,
                    outcome.LimitingNode,
                    fields.GetValueOrDefault(debit.Tenant.UsageField) + unapplied,
                    fields.GetValueOrDefault(QuotaNode.RootField) + unapplied,
                    debit.Tenant.EffectiveLimit,
                    Math.Max(0, outcome.SmallestRoom - (outcome.Admitted ? debited : 0)),
                    counters[i].Window,
                    nowMs,
                    admitted ? outcome.OverageCredits : 0,
                    admitted ? outcome.SoftLimitNode : null,
                    admitted && outcome.SoftLimitCrossed,
                    outcome.Shadow,
                    outcome.RetryAfterMicros,
                    outcome.Replayed);
            }

            return ValueTask.FromResult(new RouteDecision(admitted, limiting, decisions, lease));
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

    public ValueTask<long> ReopenAsync(PoolDefinition pool, CancellationToken cancellationToken)
    {
        lock (_pools)
        {
            var fields = Counters(pool.Name).Fields;
            var closed = fields.GetValueOrDefault(TreeAdmission.ClosedField);
            fields.Remove(TreeAdmission.ClosedField);
            return ValueTask.FromResult(closed);
        }
    }

    public ValueTask<int> AdjustAsync(IReadOnlyList<QuotaDebit> debits, RouteDecision decision, long delta, UsageKind kind, UsageContext? usage, CancellationToken cancellationToken)
    {
        var refunded = 0;
        lock (_pools)
        {
            for (var i = 0; i < debits.Count; i++)
            {
                var counters = Counters(debits[i].Pool.Name);
                if (counters.Window.StartMs == decision.Pools[i].Window.StartMs)
                {
                    TreeAdmission.Adjust(debits[i].Tenant, delta, counters.Fields);
                    refunded++;
                }
            }
        }

        return ValueTask.FromResult(refunded);
    }

    public ValueTask RenewAsync(QuotaLease lease, CancellationToken cancellationToken)
    {
        var expiry = timeProvider.GetUtcNow().ToUnixTimeMilliseconds() + _leaseMs;
        lock (_pools)
        {
            foreach (var (pool, node) in lease.Holders())
            {
                var leases = Counters(pool.Name).Leases.Of(node);
                if (leases.ContainsKey(lease.Id))
                {
                    leases[lease.Id] = expiry;
                }
            }
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask ReleaseAsync(QuotaLease lease, CancellationToken cancellationToken)
    {
        lock (_pools)
        {
            foreach (var (pool, node) in lease.Holders())
            {
                Counters(pool.Name).Leases.Of(node).Remove(lease.Id);
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>In one process a call always lands: the operation id has nothing to guard.</summary>
    public async ValueTask ReturnLeaseAsync(QuotaDebit block, RouteDecision grant, long unspent, string operationId, CancellationToken cancellationToken) =>
        await AdjustAsync([block], grant, -unspent, UsageKind.Refund, null, cancellationToken).ConfigureAwait(false);

    /// <summary>Nothing to keep: this store has no ledger, and a replica that dies takes its counters with it.</summary>
    public ValueTask RecordLeaseAsync(PoolDefinition pool, LeaseRecord record, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<(long Leases, long Credits)> SweepLeasesAsync(PoolDefinition pool, TimeSpan grace, TimeSpan keepEnded, CancellationToken cancellationToken) => ValueTask.FromResult((0L, 0L));

    public ValueTask<PoolUsage> ReadUsageAsync(PoolDefinition pool, CancellationToken cancellationToken)
    {
        var window = pool.Locate(timeProvider.GetUtcNow());
        lock (_pools)
        {
            // Counters of an earlier window are not this window's: it starts from zero.
            var fields = _pools.TryGetValue(pool.Name, out var counters) && counters.Window.StartMs == window.StartMs ? counters.Fields : null;
            var closed = counters?.Fields.GetValueOrDefault(TreeAdmission.ClosedField) ?? 0;
            var values = PoolUsage.CounterFields(pool).ToDictionary(field => field, field => fields?.GetValueOrDefault(field) ?? 0, StringComparer.Ordinal);
            return ValueTask.FromResult(new PoolUsage(window, values, closed));
        }
    }

    /// <summary>The expiries of a node's live leases (tests compare them with Redis's sorted set).</summary>
    internal long[] LiveLeases(PoolDefinition pool, QuotaNode node, long nowMs)
    {
        lock (_pools)
        {
            return Counters(pool.Name).Leases.LiveExpiries(node, nowMs);
        }
    }

    /// <summary>The window field that marks an idempotency key as charged: <c>i:&lt;tenant&gt;:&lt;key&gt;</c>.</summary>
    internal static string IdempotencyField(QuotaNode tenant, string key) => $"i:{tenant.Path}:{key}";

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

        public Leases Leases { get; } = new();
    }
}
