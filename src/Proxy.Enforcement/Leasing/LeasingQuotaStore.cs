using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Leasing;

/// <summary>
/// Credit leases in front of the store (docs/quota-model.md, "Credit leases"). For a pool with a
/// <c>Lease</c>, a replica debits a block of credits for a tenant in one ordinary atomic decision (every
/// limit, guarantee and priority on the path holds, since a block is a debit), then admits that tenant's
/// requests from the block without a store call each. The block's size follows the headroom the store
/// last reported (a quarter of it, at most <c>MaxCredits</c>), so near any limit it is one request's cost:
/// exact mode, and no overshoot. Each spend is a usage event that reaches the ledger with the lease's next
/// record (<see cref="LeaseKeeper"/> sends them); what a block has not spent goes back at its TTL, at the
/// window's end, on a configuration change, a vendor closure and at shutdown. A reset or a store failover
/// voids leases without returning them: their unspent credits stay counted, never billed.
/// </summary>
/// <param name="storeTimeout">The store's timeout: the longest a request waits behind another that is taking a block.</param>
internal sealed class LeasingQuotaStore(IQuotaStore inner, QuotaMetrics metrics, ILogger<LeasingQuotaStore> logger, TimeSpan storeTimeout) : QuotaStoreDecorator(inner)
{
    private readonly ConcurrentDictionary<QuotaNode, LeaseSlot> _slots = new();
    private readonly string _replica = Guid.NewGuid().ToString("N")[..12];

    public override ValueTask<RouteDecision> DebitAsync(IReadOnlyList<QuotaDebit> debits, UsageContext? usage, CancellationToken cancellationToken)
    {
        if (SlotFor(debits, usage) is not { } slot)
        {
            return Inner.DebitAsync(debits, usage, cancellationToken);
        }

        var cost = debits[0].Cost;
        if (slot.TrySpend(cost, usage) is { } spent)
        {
            return ValueTask.FromResult(spent);
        }

        return slot.NextSize(cost) <= cost ? ExactAsync(slot, debits, usage, cancellationToken) : TakeAsync(slot, debits, usage, cancellationToken);
    }

    /// <summary>The lease slot a decision may be paid from: one pool with a Lease, a tenant whose path allows it, no idempotency key to claim.</summary>
    private LeaseSlot? SlotFor(IReadOnlyList<QuotaDebit> debits, UsageContext? usage)
    {
        if (debits.Count != 1 || debits[0].Pool.Lease is not { } settings || usage?.Idempotency is not null)
        {
            return null;
        }

        var debit = debits[0];
        if (!_slots.TryGetValue(debit.Tenant, out var slot))
        {
            slot = _slots.GetOrAdd(debit.Tenant, _ => new LeaseSlot(debit, settings, MayLease(debit.Tenant), _replica));
        }

        return slot.Eligible && slot.Pool == debit.Pool ? slot : null;
    }

    /// <summary>No node on the path decides per request (Rate, MaxInFlight), charges overage, or is in shadow mode.</summary>
    private static bool MayLease(QuotaNode tenant)
    {
        for (QuotaNode? node = tenant; node is not null; node = node.Parent)
        {
            if (node.Rate is not null || node.MaxInFlight is not null || node.Overage != 0 || node.Mode != QuotaMode.Enforce)
            {
                return false;
            }
        }

        return true;
    }

    private async ValueTask<RouteDecision> ExactAsync(LeaseSlot slot, IReadOnlyList<QuotaDebit> debits, UsageContext? usage, CancellationToken cancellationToken)
    {
        var decision = await Inner.DebitAsync(debits, usage, cancellationToken).ConfigureAwait(false);
        slot.Learn(decision);
        return decision;
    }

    private async ValueTask<RouteDecision> TakeAsync(LeaseSlot slot, IReadOnlyList<QuotaDebit> debits, UsageContext? usage, CancellationToken cancellationToken)
    {
        var debit = debits[0];
        if (!await slot.Taking.WaitAsync(storeTimeout, cancellationToken).ConfigureAwait(false))
        {
            // Another request has been taking a block for the whole store timeout: the store is not answering,
            // and this request gets the outage policy's answer now rather than queue behind it.
            throw new QuotaStoreUnavailableException($"A credit lease of pool {debit.Pool.Name} was being taken for longer than the store timeout ({storeTimeout.TotalMilliseconds} ms).");
        }

        try
        {
            // Another request may have taken a block while this one waited.
            if (slot.TrySpend(debit.Cost, usage) is { } spent)
            {
                return spent;
            }

            var size = slot.NextSize(debit.Cost);
            if (size <= debit.Cost)
            {
                return await ExactAsync(slot, debits, usage, cancellationToken).ConfigureAwait(false);
            }

            // The block is one debit with no usage event: the ledger hears of each request it pays for.
            RouteDecision grant;
            try
            {
                grant = await Inner.DebitAsync([debit with { Cost = size }], null, cancellationToken).ConfigureAwait(false);
            }
            catch (QuotaStoreUnavailableException ex) when (ex.MayHaveDebited)
            {
                // The block may have been debited and its answer is lost for good (a replica's acknowledgement
                // missing in a failover, a connection that died with it): with no usage event to find it by, it
                // stays counted as used. Counted here as what it may be: credits possibly held, never billed.
                metrics.LeaseCredits(debit.Pool.Name, "unknown", size);
                throw;
            }

            if (!grant.Admitted)
            {
                // Less room than the last decision said: this request is decided on its own, and the next block sized from what it says.
                return await ExactAsync(slot, debits, usage, cancellationToken).ConfigureAwait(false);
            }

            metrics.LeaseTaken(debit.Pool.Name);
            metrics.LeaseCredits(debit.Pool.Name, "granted", size);
            return slot.Install(grant, size, debit.Cost, usage);
        }
        finally
        {
            slot.Taking.Release();
        }
    }

    /// <summary>A block this replica holds would pay: admitted, as a debit would be here; else the store's own answer (which counts every block as used).</summary>
    public override ValueTask<RouteDecision> PeekAsync(IReadOnlyList<QuotaDebit> debits, CancellationToken cancellationToken) =>
        SlotFor(debits, null) is { } slot && slot.TryPeek(debits[0].Cost) is { } peeked ? ValueTask.FromResult(peeked) : Inner.PeekAsync(debits, cancellationToken);

    /// <summary>A vendor closure: this replica's leases of the pool end (returned) before the store closes it, so none is spent while it is closed.</summary>
    public override async ValueTask CloseAsync(PoolDefinition pool, long untilMs, CancellationToken cancellationToken)
    {
        await Inner.CloseAsync(pool, untilMs, cancellationToken).ConfigureAwait(false);
        await EndAsync(slot => slot.Pool.Name == pool.Name, forfeit: false, CancellationToken.None).ConfigureAwait(false);
    }

    public override async ValueTask<int> AdjustAsync(IReadOnlyList<QuotaDebit> debits, RouteDecision decision, long delta, UsageKind kind, UsageContext? usage, CancellationToken cancellationToken)
    {
        if (kind == UsageKind.Reset)
        {
            // A reset gives the tenant's used credits back: a block this replica holds was part of them, so it may not be spent or returned as well.
            Forfeit(debits[0].Pool.Name);
        }

        if (decision.CreditLease is not null && _slots.TryGetValue(debits[0].Tenant, out var slot) && slot.TryAdjust(decision, delta, kind, usage))
        {
            return decision.Pools.Count;
        }

        // Decided by the store, or its lease has ended: the counters move, with the event in the same step.
        return await Inner.AdjustAsync(debits, decision, delta, kind, usage, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Voids every lease of <paramref name="pool"/> (every pool when null) without returning it: a reset, or a store that may have lost the blocks' debits.</summary>
    public void Forfeit(string? pool = null)
    {
        foreach (var slot in _slots.Values)
        {
            if (pool is null || slot.Pool.Name == pool)
            {
                foreach (var pending in slot.EndIfDue(force: true, forfeit: true))
                {
                    // Ended by a newer lease and not yet returned: voided all the same.
                    slot.ReturnFailed(pending.Unspent);
                    metrics.LeaseCredits(slot.Pool.Name, "forfeited", pending.Unspent);
                }
            }
        }
    }

    /// <summary>Ends the leases of the slots <paramref name="which"/> selects (expired ones only unless <paramref name="force"/>): unspent credits go back to the pool.</summary>
    /// <returns>Credits returned.</returns>
    /// <param name="final">No later pass will send a return again (shutdown): one that fails is taken as forfeited at once.</param>
    internal async Task<long> EndAsync(Func<LeaseSlot, bool> which, bool forfeit, CancellationToken cancellationToken, bool force = true, bool final = false)
    {
        long returned = 0;
        foreach (var slot in _slots.Values)
        {
            if (!which(slot))
            {
                continue;
            }

            foreach (var pending in slot.EndIfDue(force, forfeit))
            {
                returned += await ReturnAsync(slot, pending, final, cancellationToken).ConfigureAwait(false);
            }
        }

        return returned;
    }

    /// <summary>
    /// Gives a block's unspent credits back (counters only: they were never billed), once by the return's
    /// operation id. One the store did not acknowledge is sent again at the next pass for
    /// <see cref="LeaseSlot.ReturnFor"/>; after that the credits are taken as still counted (forfeited, a
    /// <c>lease</c> event in the ledger), which never admits more than the allowance.
    /// </summary>
    private async Task<long> ReturnAsync(LeaseSlot slot, PendingReturn pending, bool final, CancellationToken cancellationToken)
    {
        try
        {
            await Inner.ReturnLeaseAsync(new QuotaDebit(slot.Pool, slot.Tenant, pending.Unspent), pending.Grant, pending.Unspent, pending.OperationId, cancellationToken).ConfigureAwait(false);
            metrics.LeaseCredits(slot.Pool.Name, "returned", pending.Unspent);
            return pending.Unspent;
        }
        catch (Exception ex) when (ex is QuotaStoreUnavailableException or OperationCanceledException)
        {
            if (!final && Stopwatch.GetTimestamp() < pending.GiveUpTicks && !cancellationToken.IsCancellationRequested)
            {
                slot.Retry(pending);
                return 0;
            }

            slot.ReturnFailed(pending.Unspent);
            metrics.LeaseCredits(slot.Pool.Name, "forfeited", pending.Unspent);
            return 0;
        }
    }

    /// <summary>
    /// Sends every slot's records (the spends since the last pass and what each lease holds); one the store
    /// did not take is sent again next pass, until <paramref name="giveUpAfterMs"/> past its lease's end.
    /// </summary>
    /// <param name="final">No later pass will send them (shutdown): what the store does not take now is given up.</param>
    internal async Task SendRecordsAsync(long nowMs, long giveUpAfterMs, CancellationToken cancellationToken, bool final = false)
    {
        foreach (var slot in _slots.Values)
        {
            var (records, spent) = slot.TakeRecords();
            metrics.LeaseCredits(slot.Pool.Name, "spent", spent);
            metrics.LeaseCredits(slot.Pool.Name, "forfeited", slot.TakeForfeited());
            for (var i = 0; i < records.Length; i++)
            {
                try
                {
                    await Inner.RecordLeaseAsync(slot.Pool, records[i], cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is QuotaStoreUnavailableException or OperationCanceledException)
                {
                    var kept = final ? [] : records[i..].Where(r => r.ExpiresAtMs + giveUpAfterMs > nowMs).ToList();
                    var dropped = records.Length - i - kept.Count;
                    if (dropped > 0)
                    {
                        QuotaLog.LeaseRecordsDropped(logger, slot.Pool.Name, slot.Tenant.Path, dropped, records[i..].Except(kept).Sum(r => r.Spends.Count));
                    }

                    slot.Requeue(kept);
                    break;
                }
            }
        }
    }

    /// <summary>Drops the slots of configurations no longer in force once their leases have ended and their records gone.</summary>
    internal void Forget(Func<PoolDefinition, bool> current)
    {
        foreach (var (node, slot) in _slots)
        {
            if (!current(slot.Pool) && slot.Idle)
            {
                _slots.TryRemove(node, out _);
            }
        }
    }

    /// <summary>No lease in force, and nothing left to return or record.</summary>
    internal bool AllIdle => _slots.Values.All(slot => slot.Idle);

    /// <summary>This replica's unspent leased credits per pool, for the gauge.</summary>
    internal Dictionary<string, long> HeldByPool()
    {
        var held = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var slot in _slots.Values)
        {
            held[slot.Pool.Name] = held.GetValueOrDefault(slot.Pool.Name) + slot.Balance;
        }

        return held;
    }
}
