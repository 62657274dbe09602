using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// Gives a hash tag's pools a baseline when Redis has none (<c>baseline.lua</c>): on a fresh Redis, and on one
/// that lost its data. With the ledger on, each pool's current window gets back what the ledger billed in it,
/// so a Redis restarted without persistence does not open the day again; without a ledger there is nothing
/// to restore from, and the window goes on from what Redis holds (said in the log). One attempt per tag at a
/// time in this replica; across replicas the script applies the first and ignores the rest. After a
/// reconnection or a failover the counters are also held against the ledger (<see cref="AuditAsync"/>): a
/// replica promoted before it caught up keeps the baseline marker but not the last writes.
/// </summary>
internal sealed class StoreBaselines(
    IConnectionMultiplexer connection,
    RedisKeys keys,
    TimeProvider timeProvider,
    ILogger logger,
    IUsageHistory? history = null,
    Func<IEnumerable<PoolDefinition>>? configuredPools = null,
    QuotaMetrics? metrics = null)
{
    private readonly ConcurrentDictionary<string, Lazy<Task>> _running = new(StringComparer.Ordinal);

    /// <summary>
    /// Sets the baseline of <paramref name="tag"/>, restoring every pool it tags (those of
    /// <paramref name="pools"/> and those configured); returns when it is set, by this replica or another.
    /// </summary>
    public Task EnsureAsync(string tag, IEnumerable<PoolDefinition> pools)
    {
        var attempt = _running.GetOrAdd(tag, _ => new Lazy<Task>(() => EstablishAsync(tag, pools)));
        return ForgetWhenDoneAsync(tag, attempt);
    }

    /// <summary>The baselines of every configured pool's tag (before the proxy listens).</summary>
    public Task EnsureConfiguredAsync() =>
        Task.WhenAll((configuredPools?.Invoke() ?? []).GroupBy(pool => pool.HashTag, StringComparer.Ordinal).Select(tag => EnsureAsync(tag.Key, tag)));

    private async Task ForgetWhenDoneAsync(string tag, Lazy<Task> attempt)
    {
        try
        {
            await attempt.Value.ConfigureAwait(false);
        }
        finally
        {
            _running.TryRemove(KeyValuePair.Create(tag, attempt));
        }
    }

    private async Task EstablishAsync(string tag, IEnumerable<PoolDefinition> pools)
    {
        await Task.Yield();
        var tagged = Tagged(tag, pools);
        var database = connection.GetDatabase();
        for (var attempt = 1; ; attempt++)
        {
            // The counters and the streams at one instant, then the ledger: a pool Redis holds is raised to what
            // the ledger and its stream charged (a failover to a replica that had not caught up kept the window
            // but lost its last writes); one it lost is restored. The script writes only if no event was
            // written meanwhile (no decision is, without a baseline; a refund may be): else all again.
            if (await database.KeyExistsAsync(keys.Baseline(tag)).ConfigureAwait(false))
            {
                return; // set (by another replica, or before this start): the ledger need not be asked
            }

            var now = timeProvider.GetUtcNow();
            var (_, holdings) = await SnapshotScript.ReadAsync(database, keys, tagged).ConfigureAwait(false);
            var restore = new List<(PoolDefinition Pool, WindowBounds Window, string LastId, IReadOnlyDictionary<string, long> Counters)>();
            foreach (var holding in holdings)
            {
                var window = holding.Pool.Locate(now);
                restore.Add((holding.Pool, window, holding.LastId, await BaselineCountersAsync(holding, window).ConfigureAwait(false)));
            }

            var outcomes = await BaselineScript.EvaluateAsync(database, keys, tag, restore, now.ToUnixTimeMilliseconds()).ConfigureAwait(false);
            if (outcomes is null)
            {
                return; // another replica set it first
            }

            if (outcomes.Length == 0)
            {
                if (attempt < MaxAttempts)
                {
                    continue; // an event was written since the snapshot
                }

                throw new QuotaStoreUnavailableException($"The counters of hash tag {tag} kept changing while their baseline was being set; it is tried again.");
            }

            for (var i = 0; i < restore.Count; i++)
            {
                var (pool, window, _, counters) = restore[i];
                metrics?.StoreBaseline(pool.Name, outcomes[i].ToString().ToLowerInvariant());
                if (outcomes[i] is BaselineOutcome.Restored or BaselineOutcome.Raised)
                {
                    QuotaLog.StoreCountersRestored(logger, pool.Name, counters.GetValueOrDefault(QuotaNode.RootField), window.Start);
                }
                else if (outcomes[i] == BaselineOutcome.Empty && history is null)
                {
                    QuotaLog.StoreBaselineWithoutLedger(logger, pool.Name);
                }
            }

            return;
        }
    }

    private const int MaxAttempts = 5;

    private List<PoolDefinition> Tagged(string tag, IEnumerable<PoolDefinition> pools) =>
        [.. pools.Concat(configuredPools?.Invoke() ?? [])
            .Where(pool => pool.HashTag == tag)
            .DistinctBy(pool => pool.Name, StringComparer.Ordinal)];

    /// <summary>
    /// What the pool's counters should be when its baseline is set: what the ledger and the stream charged in
    /// the window. For a window Redis holds, a ledger that cannot be asked (or a stream too long to read)
    /// leaves the counters as they are: only a pool that lost its window waits for the ledger.
    /// </summary>
    private async Task<IReadOnlyDictionary<string, long>> BaselineCountersAsync(PoolHolding holding, WindowBounds window)
    {
        var held = holding.Start == window.StartMs;
        if (history is null || (held && holding.Pending is null))
        {
            return new Dictionary<string, long>();
        }

        try
        {
            return await ChargedAsync(holding, window, window.End).ConfigureAwait(false);
        }
        catch (Exception ex) when (held && ex is not OperationCanceledException)
        {
            QuotaLog.StoreAuditFailed(logger, holding.Pool.Name, ex);
            return new Dictionary<string, long>();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new QuotaStoreUnavailableException($"The ledger did not say what pool {holding.Pool.Name} used in its window from {window.Start:o}: its counters cannot be restored yet.", ex);
        }
    }

    /// <summary>
    /// The counters of <paramref name="holding"/>'s window as the ledger and the pool's stream charged them
    /// before <paramref name="until"/>: each event once, from the stream if it is still there.
    /// </summary>
    private async Task<IReadOnlyDictionary<string, long>> ChargedAsync(PoolHolding holding, WindowBounds window, DateTimeOffset until)
    {
        var pending = holding.Pending ?? [];
        var billed = await history!.NetByTenantAsync(holding.Pool.Name, window, until, [.. pending.Select(e => e.EventId)], CancellationToken.None).ConfigureAwait(false);
        var net = new Dictionary<string, long>(billed, StringComparer.Ordinal);
        foreach (var e in pending.Where(e => e.OccurredAt >= window.Start && e.OccurredAt < window.End && e.OccurredAt < until))
        {
            net[e.Tenant] = net.GetValueOrDefault(e.Tenant) + e.Credits;
        }

        return Counters(holding.Pool, net);
    }

    /// <summary>
    /// Holds each pool of <paramref name="tag"/> against the ledger: a counter below what the ledger and its
    /// stream charged to it has lost writes that were billed (a failover to a replica that had not caught up
    /// keeps the baseline marker, so nothing else notices). Then the tag's baseline is taken away, decisions
    /// on it wait, and it is set again, raised to what was charged. Without a ledger there is nothing to hold
    /// it against.
    /// </summary>
    /// <param name="report">Whether a loss is logged (an audit tried again says it once).</param>
    /// <returns>The pools found to have lost writes (and raised back).</returns>
    public async Task<IReadOnlyList<string>> AuditAsync(string tag, IEnumerable<PoolDefinition> pools, bool report = true)
    {
        if (history is null)
        {
            return [];
        }

        var tagged = Tagged(tag, pools);
        var database = connection.GetDatabase();
        var (nowMs, holdings) = await SnapshotScript.ReadAsync(database, keys, tagged).ConfigureAwait(false);
        var now = DateTimeOffset.FromUnixTimeMilliseconds(nowMs);
        var outcomes = new List<(string Pool, string Outcome)>();
        foreach (var holding in holdings)
        {
            var window = holding.Pool.Locate(now);
            if (holding.Pending is null || (holding.Start is { } start && start != window.StartMs))
            {
                // A stream too long to read; or a hash still on the last window (the next debit moves it on).
                outcomes.Add((holding.Pool.Name, "unread"));
                continue;
            }

            // Events written after the snapshot are in neither its counters nor its stream: the ledger is
            // asked only for what happened before it, on the clock that stamped the events.
            IReadOnlyDictionary<string, long> charged;
            try
            {
                charged = await ChargedAsync(holding, window, now).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The ledger is away: nothing to hold the counters against. They go on as they are.
                outcomes.Add((holding.Pool.Name, "failed"));
                QuotaLog.StoreAuditFailed(logger, holding.Pool.Name, ex);
                continue;
            }

            var missing = charged.Count(field => field.Value > holding.Counters.GetValueOrDefault(field.Key));
            outcomes.Add((holding.Pool.Name, missing == 0 ? "consistent" : "lost"));
            if (missing > 0 && report)
            {
                QuotaLog.StoreLostWrites(logger, holding.Pool.Name, holding.Counters.GetValueOrDefault(QuotaNode.RootField), charged.GetValueOrDefault(QuotaNode.RootField), missing);
            }
        }

        var lost = outcomes.Where(o => o.Outcome == "lost").Select(o => o.Pool).ToList();
        if (lost.Count > 0)
        {
            // May be refused (a promoted replica takes writes only once a replica follows it): the caller tries again.
            await database.KeyDeleteAsync(keys.Baseline(tag)).ConfigureAwait(false);
            await EnsureAsync(tag, tagged).ConfigureAwait(false);
        }

        foreach (var (pool, outcome) in outcomes)
        {
            metrics?.StoreAudit(pool, outcome);
        }

        return lost;
    }

    /// <summary>
    /// <see cref="AuditAsync"/> for every configured pool's tag, each tried again while Redis refuses it (a
    /// new master refuses writes until a replica follows it; a Cluster shard may be down) for up to
    /// <paramref name="retryFor"/>. While a tag's audit runs, <see cref="Auditing"/> gives it: decisions on
    /// that tag wait for it (within their timeout), so that none is taken on counters that lost writes,
    /// and a shard that is down holds up only its own pools.
    /// </summary>
    public Task AuditConfiguredAsync(TimeSpan retryFor = default) =>
        Task.WhenAll((configuredPools?.Invoke() ?? [])
            .GroupBy(pool => pool.HashTag, StringComparer.Ordinal)
            .Select(tag => _audits[tag.Key] = AuditWithRetriesAsync(tag.Key, [.. tag], retryFor)));

    /// <summary>The audit of <paramref name="tag"/>'s counters running (or last run) since a reconnection, if any.</summary>
    public Task? Auditing(string tag) => _audits.TryGetValue(tag, out var audit) ? audit : null;

    private static readonly TimeSpan AuditRetryDelay = TimeSpan.FromMilliseconds(250);

    private readonly ConcurrentDictionary<string, Task> _audits = new(StringComparer.Ordinal);

    private Task AuditWithRetriesAsync(string tag, IReadOnlyList<PoolDefinition> pools, TimeSpan retryFor) => Task.Run(async () =>
    {
        var started = timeProvider.GetTimestamp();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await AuditAsync(tag, pools, report: attempt == 1).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (ex is RedisException or QuotaStoreUnavailableException && timeProvider.GetElapsedTime(started) < retryFor)
            {
                await Task.Delay(AuditRetryDelay, timeProvider).ConfigureAwait(false);
            }
        }
    });

    /// <summary>
    /// The usage hash's fields for what the ledger billed: each tenant's net replayed down its path, as
    /// refunds and settlements move the counters, so that the aggregates of guarantees and allocations come
    /// out as the debits that made them left them. A tenant no longer configured counts on its nearest
    /// configured ancestor (the pool at least).
    /// </summary>
    internal static IReadOnlyDictionary<string, long> Counters(PoolDefinition pool, IReadOnlyDictionary<string, long> netByTenant)
    {
        var counters = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (path, net) in netByTenant.OrderBy(entry => entry.Key, StringComparer.Ordinal))
        {
            if (net > 0)
            {
                TreeAdmission.Adjust(Nearest(pool, path), net, counters);
            }
        }

        return counters;
    }

    private static QuotaNode Nearest(PoolDefinition pool, string path)
    {
        for (var candidate = path; candidate.Length > 0; candidate = candidate.Contains('/') ? candidate[..candidate.LastIndexOf('/')] : "")
        {
            if (pool.Nodes.TryGetValue(candidate, out var node))
            {
                return node;
            }
        }

        return pool.Root;
    }
}
