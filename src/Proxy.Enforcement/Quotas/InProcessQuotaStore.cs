namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// Counters in this process's memory, with the same rule as <c>debit.lua</c>. It serves a single replica
/// (the embedded default) and is the reference model the Lua script is tested against.
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
            if (!_pools.TryGetValue(debit.Pool.Name, out var counters))
            {
                counters = new PoolCounters();
                _pools.Add(debit.Pool.Name, counters);
            }

            // A new window starts from zero: no reset job, the first decision in it clears the counters.
            if (window.StartMs > counters.Window.StartMs)
            {
                counters.Window = window;
                counters.PoolUsed = 0;
                counters.TenantUsed.Clear();
            }
            else
            {
                window = counters.Window;
            }

            var tenantUsed = counters.TenantUsed.GetValueOrDefault(debit.Tenant.Name);
            // When both would be exceeded the pool is named: it is what ran dry for everyone.
            var limitedBy = counters.PoolUsed + debit.Cost > debit.Pool.Limit ? QuotaLimitedBy.Pool
                : tenantUsed + debit.Cost > debit.Tenant.Limit ? QuotaLimitedBy.Tenant
                : QuotaLimitedBy.None;
            if (limitedBy == QuotaLimitedBy.None)
            {
                counters.PoolUsed += debit.Cost;
                tenantUsed += debit.Cost;
                counters.TenantUsed[debit.Tenant.Name] = tenantUsed;
            }

            return ValueTask.FromResult(new QuotaDecision(
                limitedBy == QuotaLimitedBy.None,
                limitedBy,
                counters.PoolUsed,
                tenantUsed,
                debit.Pool.Limit,
                debit.Tenant.Limit,
                window,
                now.ToUnixTimeMilliseconds()));
        }
    }

    private sealed class PoolCounters
    {
        public WindowBounds Window { get; set; } = new(long.MinValue, long.MinValue);

        public long PoolUsed { get; set; }

        public Dictionary<string, long> TenantUsed { get; } = new(StringComparer.Ordinal);
    }
}
