using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// What becomes of a decision the proxy answered 503 for (its timeout, the caller leaving, the connection
/// failing, a debit the replicas did not confirm): a reply that arrives admitted is given back, with a ledger
/// refund event, once however often it is sent; a reply lost with its connection is looked up by its usage
/// event (<see cref="LostReplies"/>). So a 503 costs nothing. <c>quota_proxy_store_abandoned_decisions_total</c>
/// counts each by its outcome.
/// </summary>
/// <param name="lostReplies">Null without a ledger: then nothing says whether a lost reply's decision ran.</param>
/// <param name="release">Releases a MaxInFlight lease.</param>
internal sealed class AbandonedDecisions(
    IConnectionMultiplexer connection,
    RedisKeys keys,
    TimeSpan timeout,
    TimeProvider timeProvider,
    ILogger logger,
    QuotaMetrics? metrics,
    RedisClock clock,
    bool ledger,
    LostReplies? lostReplies,
    int replicaAcks,
    Func<QuotaLease, Task> release)
{
    /// <summary>Whether a lost reply of a request with this usage can be looked up.</summary>
    public bool CanResolve(UsageContext? usage) => lostReplies is not null && usage is not null;

    /// <summary>A decision nothing can say more of (no ledger): its credits stay charged if it ran.</summary>
    public void Unresolved() => metrics?.AbandonedDecision("unanswered");

    /// <summary>Before each attempt to give an abandoned decision back: about half a minute in all, then it is reported as failed.</summary>
    private static readonly TimeSpan[] RefundRetries = [TimeSpan.Zero, .. new[] { 0.2, 0.5, 1, 2, 4, 8, 15 }.Select(TimeSpan.FromSeconds)];

    /// <summary>
    /// A decision the proxy answered 503 for: when its reply arrives, an admission is given back (counters
    /// and, with the ledger on, a refund event), so the 503 costs nothing. A call that never answers is
    /// bounded by its deadline: the script debits nothing after it; and a reply lost with its connection is
    /// looked for, with the ledger on, by its usage event (<see cref="LostReplies"/>).
    /// </summary>
    public async Task GiveBackWhenLandedAsync(Task<RedisResult> evaluation, IReadOnlyList<QuotaDebit> debits, string? leaseId, UsageContext? usage, (long FromMs, long ToMs) span)
    {
        RouteDecision decision;
        try
        {
            decision = DebitScript.Read(await evaluation.ConfigureAwait(false), debits, leaseId);
        }
        catch (Exception ex) when (RedisQuotaStore.IsStoreFailure(ex))
        {
            if (lostReplies is not null && usage is not null)
            {
                await ResolveLostReplyAsync(debits, usage, span).ConfigureAwait(false);
            }
            else
            {
                // Without usage events nothing says whether it ran; if it did, its counters stay charged (never
                // an admission too many: at worst one too few) and nothing is billed.
                metrics?.AbandonedDecision("unanswered");
            }

            return;
        }

        clock.Observe(decision.Pools[0].NowMs);
        if (!decision.Admitted || decision.Pools.All(pool => pool.Replayed))
        {
            // Nothing was charged: rejected, expired, or a replay that costs nothing.
            metrics?.AbandonedDecision(decision.Admitted || decision.Pools[decision.LimitingIndex].LimitedBy != QuotaLimitedBy.Expired ? "not_admitted" : "expired");
            await ReleaseQuietlyAsync(decision.Lease);
            return;
        }

        if (CanResolve(usage))
        {
            // Given back by its usage event, where that debit is: the Redis that answered may have been demoted
            // since, and a refund on a new master that never held the debit would take a credit it never had.
            var now = decision.Pools[0].NowMs;
            await GiveBackByEventAsync(debits, usage!, (now, now), decision.Lease).ConfigureAwait(false);
            return;
        }

        await RefundAsync(debits, [.. decision.Pools.Select(pool => pool.Window.StartMs)], usage, decision.Lease).ConfigureAwait(false);
    }

    /// <summary>
    /// A decision whose reply was lost: once the store answers again (retried for about a minute), its usage
    /// event says whether it was admitted; if it was, it is given back like any late admission.
    /// </summary>
    public Task ResolveLostReplyAsync(IReadOnlyList<QuotaDebit> debits, UsageContext usage, (long FromMs, long ToMs) span) =>
        GiveBackByEventAsync(debits, usage, span, lease: null); // a lost decision's leases are not known by id: they expire by themselves

    /// <summary>
    /// Gives back a debit found by its usage event (<see cref="LostReplies"/>), looked up again on every attempt
    /// on whatever master then holds the pool. While the event is in the stream, the refund is made only where
    /// it is, in the same atomic step (<see cref="AdjustScript.RefundWhereDebitedAsync"/>); once it is in the
    /// ledger, the debit was billed, and the refund is too. A debit found nowhere was never made, or was lost
    /// with a master demoted before it replicated: either way there is nothing to give back.
    /// </summary>
    private async Task GiveBackByEventAsync(IReadOnlyList<QuotaDebit> debits, UsageContext usage, (long FromMs, long ToMs) span, QuotaLease? lease)
    {
        // One operation id for every attempt: the refund applies once however often it is sent.
        var operation = Guid.NewGuid().ToString("N");
        Exception? last = null;
        foreach (var pause in LostReplyRetries)
        {
            await Task.Delay(pause, timeProvider).ConfigureAwait(false);
            try
            {
                var database = connection.GetDatabase();
                var landed = await FindAsync(database, debits[0], usage, span).ConfigureAwait(false);
                if (landed is null)
                {
                    await ReleaseQuietlyAsync(lease);
                    metrics?.AbandonedDecision("not_admitted");
                    return;
                }

                var instant = DateTimeOffset.FromUnixTimeMilliseconds(landed.AtMs);
                long[] windowStarts = [.. debits.Select(debit => debit.Pool.Locate(instant).StartMs)];
                if (landed.StreamId is { } eventId)
                {
                    if (!await AdjustScript.RefundWhereDebitedAsync(database, keys, debits, windowStarts, usage, operation, eventId).WaitAsync(timeout).ConfigureAwait(false))
                    {
                        continue; // the event left the stream since it was found (flushed): looked up again, in the ledger
                    }
                }
                else
                {
                    // In the ledger: the debit was billed, so the refund is billed too.
                    await AdjustScript.EvaluateAsync(database, keys, debits, windowStarts, -debits[0].Cost, UsageKind.Refund, usage, operation).WaitAsync(timeout).ConfigureAwait(false);
                }

                await GivenBackAsync(database, debits, lease).ConfigureAwait(false);
                return;
            }
            catch (ObjectDisposedException ex)
            {
                // The proxy is stopping (its connection is gone): nothing more can be looked up.
                last = ex;
                break;
            }
            catch (Exception ex)
            {
                // The store or the ledger is not back yet (a background task: whatever failed, try again).
                last = ex;
            }
        }

        metrics?.AbandonedDecision("unanswered");
        QuotaLog.LostReplyNotResolved(logger, debits[0].Cost, last);
    }

    /// <summary>
    /// One lookup at a time per replica, each within a few seconds: after an outage every abandoned decision
    /// looks for its event at once, and hundreds of concurrent stream and ledger reads would starve each
    /// other (and the ledger's connection pool) until all of them time out.
    /// </summary>
    private async Task<LandedDebit?> FindAsync(IDatabase database, QuotaDebit debit, UsageContext usage, (long FromMs, long ToMs) span)
    {
        await _lookups.WaitAsync().ConfigureAwait(false);
        try
        {
            return await lostReplies!.FindAsync(database, debit, usage, span.FromMs, span.ToMs).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        finally
        {
            _lookups.Release();
        }
    }

    private readonly SemaphoreSlim _lookups = new(2);

    /// <summary>
    /// A give-back has been applied: once it is on the replicas (else thrown, so that it is sent again: its
    /// operation applies once, and a failover could lose it), the lease goes and it is counted.
    /// </summary>
    private async Task GivenBackAsync(IDatabase database, IReadOnlyList<QuotaDebit> debits, QuotaLease? lease)
    {
        if (replicaAcks > 0 && await AcknowledgedAsync(database, keys.PoolUsage(debits[0].Pool), timeout).ConfigureAwait(false) < replicaAcks)
        {
            throw new TimeoutException("the refund did not reach the replicas in time");
        }

        await ReleaseQuietlyAsync(lease);
        metrics?.AbandonedDecision("refunded");
        QuotaLog.AbandonedDecisionRefunded(logger, debits[0].Cost, "refunded");
    }

    /// <summary>Before each attempt to find an abandoned decision's event: the store may take a while to come back.</summary>
    private static readonly TimeSpan[] LostReplyRetries = [.. new[] { 0.1, 0.5, 1, 2, 4, 8, 15, 30 }.Select(TimeSpan.FromSeconds)];

    /// <summary>Gives an abandoned admission back: retried about half a minute, applied once (an operation id).</summary>
    private async Task RefundAsync(IReadOnlyList<QuotaDebit> debits, IReadOnlyList<long> windowStarts, UsageContext? usage, QuotaLease? lease)
    {
        // One operation id for every attempt: adjust.lua applies it once, so an attempt that timed out here
        // but reaches Redis later, after a retry got through, gives nothing back twice.
        var operation = Guid.NewGuid().ToString("N");
        Exception? last = null;
        foreach (var pause in RefundRetries)
        {
            await Task.Delay(pause, timeProvider).ConfigureAwait(false);
            try
            {
                var database = connection.GetDatabase();
                await AdjustScript.EvaluateAsync(database, keys, debits, windowStarts, -debits[0].Cost, UsageKind.Refund, ledger ? usage : null, operation)
                    .WaitAsync(timeout)
                    .ConfigureAwait(false);
                await GivenBackAsync(database, debits, lease).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (RedisQuotaStore.IsStoreFailure(ex))
            {
                last = ex;
            }
        }

        metrics?.AbandonedDecision("refund_failed");
        QuotaLog.AbandonedDecisionNotRefunded(logger, debits[0].Cost, last);
    }

    /// <summary>How many replicas hold this connection's writes so far (<c>WAIT</c>, within <paramref name="within"/>); -1 when the store failed.</summary>
    public async Task<long> AcknowledgedAsync(IDatabase database, RedisKey key, TimeSpan within)
    {
        var waitMs = Math.Max(1, (long)within.TotalMilliseconds);
        try
        {
            var server = connection.GetServer(database.IdentifyEndpoint(key) ?? throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, "no server holds the key"));
            return (long)await server.ExecuteAsync("WAIT", replicaAcks, waitMs)
                .WaitAsync(TimeSpan.FromMilliseconds(waitMs) + TimeSpan.FromMilliseconds(20))
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisQuotaStore.IsStoreFailure(ex))
        {
            return -1;
        }
    }

    public async Task ReleaseQuietlyAsync(QuotaLease? lease)
    {
        if (lease is null)
        {
            return;
        }

        try
        {
            await release(lease).ConfigureAwait(false);
        }
        catch (QuotaStoreUnavailableException)
        {
            // Logged by ReleaseAsync; the lease expires by itself.
        }
    }
}
