using System.Diagnostics;
using System.Runtime.CompilerServices;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Observability;

/// <summary>
/// The counter store as the rest of the proxy sees it: every call timed into
/// <c>quota_proxy_store_duration_seconds</c> and, when the store could not answer, counted in
/// <c>quota_proxy_store_errors_total</c>, by operation. The one place store calls are measured.
/// </summary>
internal sealed class MeteredQuotaStore(IQuotaStore inner, QuotaMetrics metrics) : IQuotaStore
{
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<RouteDecision> DebitAsync(IReadOnlyList<QuotaDebit> debits, UsageContext? usage, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            var decision = await inner.DebitAsync(debits, usage, cancellationToken).ConfigureAwait(false);
            metrics.StoreCall(StoreOperation.Debit, started, failed: false);
            return decision;
        }
        catch (QuotaStoreUnavailableException)
        {
            metrics.StoreCall(StoreOperation.Debit, started, failed: true);
            throw;
        }
    }

    public ValueTask<RouteDecision> PeekAsync(IReadOnlyList<QuotaDebit> debits, CancellationToken cancellationToken) =>
        MeasureAsync(StoreOperation.Peek, Stopwatch.GetTimestamp(), inner.PeekAsync(debits, cancellationToken));

    public ValueTask CloseAsync(PoolDefinition pool, long untilMs, CancellationToken cancellationToken) =>
        MeasureAsync(StoreOperation.Close, Stopwatch.GetTimestamp(), inner.CloseAsync(pool, untilMs, cancellationToken));

    public ValueTask<long> ReopenAsync(PoolDefinition pool, CancellationToken cancellationToken) => inner.ReopenAsync(pool, cancellationToken);

    public ValueTask<int> AdjustAsync(IReadOnlyList<QuotaDebit> debits, RouteDecision decision, long delta, UsageKind kind, UsageContext? usage, CancellationToken cancellationToken) =>
        MeasureAsync(StoreOperation.Adjust, Stopwatch.GetTimestamp(), inner.AdjustAsync(debits, decision, delta, kind, usage, cancellationToken));

    public ValueTask RenewAsync(QuotaLease lease, CancellationToken cancellationToken) => inner.RenewAsync(lease, cancellationToken);

    public ValueTask ReleaseAsync(QuotaLease lease, CancellationToken cancellationToken) =>
        MeasureAsync(StoreOperation.Release, Stopwatch.GetTimestamp(), inner.ReleaseAsync(lease, cancellationToken));

    public ValueTask<PoolUsage> ReadUsageAsync(PoolDefinition pool, CancellationToken cancellationToken) =>
        MeasureAsync(StoreOperation.Read, Stopwatch.GetTimestamp(), inner.ReadUsageAsync(pool, cancellationToken));

    public ValueTask ReturnLeaseAsync(QuotaDebit block, RouteDecision grant, long unspent, string operationId, CancellationToken cancellationToken) =>
        MeasureAsync(StoreOperation.Adjust, Stopwatch.GetTimestamp(), inner.ReturnLeaseAsync(block, grant, unspent, operationId, cancellationToken));

    public ValueTask RecordLeaseAsync(PoolDefinition pool, LeaseRecord record, CancellationToken cancellationToken) =>
        MeasureAsync(StoreOperation.Lease, Stopwatch.GetTimestamp(), inner.RecordLeaseAsync(pool, record, cancellationToken));

    public ValueTask<(long Leases, long Credits)> SweepLeasesAsync(PoolDefinition pool, TimeSpan grace, TimeSpan keepEnded, CancellationToken cancellationToken) => inner.SweepLeasesAsync(pool, grace, keepEnded, cancellationToken);

    // The timestamp is an argument, taken before the call it measures starts.
    private async ValueTask MeasureAsync(string operation, long started, ValueTask call)
    {
        try
        {
            await call.ConfigureAwait(false);
            metrics.StoreCall(operation, started, failed: false);
        }
        catch (QuotaStoreUnavailableException)
        {
            metrics.StoreCall(operation, started, failed: true);
            throw;
        }
    }

    private async ValueTask<T> MeasureAsync<T>(string operation, long started, ValueTask<T> call)
    {
        try
        {
            var result = await call.ConfigureAwait(false);
            metrics.StoreCall(operation, started, failed: false);
            return result;
        }
        catch (QuotaStoreUnavailableException)
        {
            metrics.StoreCall(operation, started, failed: true);
            throw;
        }
    }
}
