using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Observability;

namespace QuotaProxy.Enforcement.Leasing;

/// <summary>
/// Keeps the credit leases of <see cref="LeasingQuotaStore"/>: every <see cref="Pass"/> it returns what
/// expired leases (TTL or window end) and leases of a configuration no longer in force did not spend, and
/// sends the leases' records (their spends, as usage events, and what each still holds); every
/// <see cref="SweepEvery"/> it claims the leases of replicas that died. At shutdown every lease is returned
/// and recorded before the store goes.
/// </summary>
internal sealed class LeaseKeeper(LeasingQuotaStore leases, LiveConfiguration live, IOverrideStore announcements, QuotaMetrics metrics, TimeProvider time, ILogger<LeaseKeeper> logger) : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            // Another replica's reset voids this one's leases of the pool.
            await announcements.SubscribeResetsAsync(pool => leases.Forfeit(pool)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            QuotaLog.LeasePassFailed(logger, ex);
        }

        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>How often spends are recorded and expired leases returned: also how long a spend may wait for the ledger.</summary>
    internal static readonly TimeSpan Pass = TimeSpan.FromMilliseconds(20);

    internal static readonly TimeSpan SweepEvery = TimeSpan.FromSeconds(5);

    /// <summary>How long past its end an open lease may still be closed by its replica before the sweep claims it as lost.</summary>
    internal static readonly TimeSpan Grace = TimeSpan.FromSeconds(10);

    /// <summary>How long past its end a closed or claimed lease's record is kept: a record sent again within it applies at most once.</summary>
    internal static readonly TimeSpan KeepEnded = TimeSpan.FromHours(1);

    /// <summary>How long past its lease's end a record the store did not take is sent again (then it is given up, event 1500).</summary>
    internal static readonly TimeSpan RecordFor = TimeSpan.FromMinutes(50);

    /// <summary>How long shutdown tries a store that does not answer to return the leases and send their records.</summary>
    internal static readonly TimeSpan ShutdownFor = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Pass, time);
        var nextSweep = time.GetUtcNow() + SweepEvery;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    await PassAsync(stoppingToken).ConfigureAwait(false);
                    if (time.GetUtcNow() >= nextSweep)
                    {
                        nextSweep = time.GetUtcNow() + SweepEvery;
                        await SweepAsync(stoppingToken).ConfigureAwait(false);
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    QuotaLog.LeasePassFailed(logger, ex);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping: StopAsync returns what is left.
        }
    }

    /// <summary>One pass: expired and outdated leases returned, records sent, the gauge set.</summary>
    internal async Task PassAsync(CancellationToken cancellationToken)
    {
        var model = live.Model;
        await leases.EndAsync(slot => true, forfeit: false, cancellationToken, force: false).ConfigureAwait(false);
        await leases.EndAsync(slot => !IsCurrent(model, slot.Pool), forfeit: false, cancellationToken).ConfigureAwait(false);
        await leases.SendRecordsAsync(time.GetUtcNow().ToUnixTimeMilliseconds(), (long)RecordFor.TotalMilliseconds, cancellationToken).ConfigureAwait(false);
        leases.Forget(pool => IsCurrent(model, pool));
        foreach (var (pool, held) in leases.HeldByPool())
        {
            metrics.LeasedCredits(pool, held);
        }
    }

    private static bool IsCurrent(Quotas.QuotaModel model, Quotas.PoolDefinition pool) => model.Pools.TryGetValue(pool.Name, out var current) && ReferenceEquals(current, pool);

    /// <summary>Claims the leases of replicas that died, in every pool with leases (any replica may: each is claimed once).</summary>
    internal async Task SweepAsync(CancellationToken cancellationToken)
    {
        foreach (var pool in live.Model.Pools.Values)
        {
            if (pool.Lease is null)
            {
                continue;
            }

            try
            {
                var (claimed, lost) = await leases.SweepLeasesAsync(pool, Grace, KeepEnded, cancellationToken).ConfigureAwait(false);
                if (claimed > 0)
                {
                    metrics.LeaseCredits(pool.Name, "lost", lost);
                    QuotaLog.LeasesLost(logger, pool.Name, claimed, lost);
                }
            }
            catch (Quotas.QuotaStoreUnavailableException)
            {
                // Logged by the store; the next sweep asks again.
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Shutdown: every lease goes back, and every spend reaches the store, before the store goes. A store
            // that does not answer is tried for a few seconds; what it still has not taken then is given up
            // (returns counted as forfeited, records logged as event 1500).
            var until = time.GetUtcNow() + ShutdownFor;
            while (true)
            {
                await leases.EndAsync(slot => true, forfeit: false, cancellationToken).ConfigureAwait(false);
                await leases.SendRecordsAsync(time.GetUtcNow().ToUnixTimeMilliseconds(), (long)RecordFor.TotalMilliseconds, cancellationToken).ConfigureAwait(false);
                if (leases.AllIdle || time.GetUtcNow() >= until)
                {
                    break;
                }

                await Task.Delay(Pass * 5, time, cancellationToken).ConfigureAwait(false);
            }

            await leases.EndAsync(slot => true, forfeit: false, cancellationToken, final: true).ConfigureAwait(false);
            await leases.SendRecordsAsync(time.GetUtcNow().ToUnixTimeMilliseconds(), giveUpAfterMs: 0, cancellationToken, final: true).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            QuotaLog.LeasePassFailed(logger, ex);
        }
    }
}
