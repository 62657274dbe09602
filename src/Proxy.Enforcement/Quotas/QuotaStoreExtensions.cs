namespace QuotaProxy.Enforcement.Quotas;

internal static class QuotaStoreExtensions
{
    /// <summary>A decision on one pool: <see cref="IQuotaStore.DebitAsync(IReadOnlyList{QuotaDebit}, CancellationToken)"/> with a single debit.</summary>
    public static async ValueTask<QuotaDecision> DebitAsync(this IQuotaStore store, QuotaDebit debit, CancellationToken cancellationToken) =>
        (await store.DebitAsync([debit], cancellationToken).ConfigureAwait(false)).Pools[0];

    /// <summary>Gives an admitted request's whole cost back: an adjustment of −cost, recorded as a refund.</summary>
    public static ValueTask<int> RefundAsync(this IQuotaStore store, IReadOnlyList<QuotaDebit> debits, RouteDecision decision, UsageContext? usage, CancellationToken cancellationToken) =>
        store.AdjustAsync(debits, decision, -debits[0].Cost, UsageKind.Refund, usage, cancellationToken);
}
