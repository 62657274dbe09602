using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;
using QuotaProxy.Enforcement.Redis;

namespace QuotaProxy.Enforcement.Outage;

/// <summary>
/// Charges the store with the emergency admissions of the journal once it answers again: each as a charge
/// of its cost on every node of its path, in the window it was admitted in (counters only while that
/// window lasts; its usage event whatever the window), exactly once (the record's id is the adjustment's
/// operation id, so a replay interrupted by a crash does not charge twice).
/// </summary>
internal sealed class JournalReplay(EmergencyJournal journal, RedisQuotaStore store, LiveConfiguration live, ILogger<JournalReplay> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            foreach (var record in journal.Pending())
            {
                try
                {
                    if (!await ReplayAsync(record))
                    {
                        break; // the store is still away: the rest waits for the next pass
                    }
                }
                catch (Exception ex)
                {
                    // A background pass survives anything: the record stays journaled for the next one.
                    QuotaLog.EmergencyReplayFailed(logger, record.Id!, ex);
                    break;
                }
            }

            try
            {
                await Task.Delay(Interval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <returns>False when the store did not answer.</returns>
    private async Task<bool> ReplayAsync(JournalRecord record)
    {
        var model = live.Model;
        var debits = new List<QuotaDebit>();
        var decisions = new List<QuotaDecision>();
        foreach (var pool in record.Pools!)
        {
            if (!model.Pools.TryGetValue(pool.Pool, out var definition) || !definition.Nodes.TryGetValue(record.Tenant!, out var node))
            {
                // The configuration no longer has this pool or tenant: there is nothing to charge it to.
                QuotaLog.EmergencyRecordDropped(logger, record.Id!, pool.Pool, record.Tenant!);
                journal.Done(record);
                return true;
            }

            debits.Add(new QuotaDebit(definition, node, record.Cost));
            decisions.Add(new QuotaDecision(true, QuotaLimitedBy.None, null, 0, 0, node.EffectiveLimit, 0, new WindowBounds(pool.WindowStartMs, pool.WindowStartMs), record.AtMs));
        }

        var usage = record.Route is null ? null : new UsageContext(record.Route, record.RequestId ?? record.Id!);
        try
        {
            await store.ChargeOnceAsync(debits, new RouteDecision(true, -1, decisions), record.Cost, usage, record.Id!);
        }
        catch (QuotaStoreUnavailableException)
        {
            return false;
        }

        journal.Done(record);
        QuotaLog.EmergencyRecordCharged(logger, record.Id!, record.Cost, record.Tenant!);
        return true;
    }
}
