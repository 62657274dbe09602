using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Outage;

/// <summary>
/// The store with the outage policy <c>AllowBounded</c> in front: a decision the store cannot make is
/// admitted from the pool's emergency allowance when there is some left (<see cref="EmergencyJournal"/>),
/// else it stays the outage policy's 503. Everything else goes to the store as it is.
/// </summary>
internal sealed class EmergencyQuotaStore(IQuotaStore store, EmergencyJournal journal) : QuotaStoreDecorator(store)
{
    public override async ValueTask<RouteDecision> DebitAsync(IReadOnlyList<QuotaDebit> debits, UsageContext? usage, CancellationToken cancellationToken)
    {
        try
        {
            return await Inner.DebitAsync(debits, usage, cancellationToken).ConfigureAwait(false);
        }
        catch (QuotaStoreUnavailableException) when (journal.TryAdmit(debits, usage) is { } emergency)
        {
            return emergency;
        }
    }

    // A question (PeekAsync) is not a request: while the store is away it is answered with the outage (503),
    // never from the allowance. Every other call goes to the store as it is.
}
