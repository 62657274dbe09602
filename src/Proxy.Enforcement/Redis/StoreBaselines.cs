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
/// time in this replica; across replicas the script applies the first and ignores the rest.
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
        var tagged = pools.Concat(configuredPools?.Invoke() ?? [])
            .Where(pool => pool.HashTag == tag)
            .DistinctBy(pool => pool.Name, StringComparer.Ordinal)
            .ToList();
        var now = timeProvider.GetUtcNow();
        var database = connection.GetDatabase();
        var restore = new List<(PoolDefinition Pool, WindowBounds Window, IReadOnlyDictionary<string, long> Counters)>();
        foreach (var pool in tagged)
        {
            var window = pool.Locate(now);
            // A pool whose hash holds the window keeps it (the script checks again): the ledger is asked only
            // for what Redis has lost, so that a ledger that is away stops only the pools that need it.
            var held = (long?)await database.HashGetAsync(keys.PoolUsage(pool), "start").ConfigureAwait(false) == window.StartMs;
            restore.Add((pool, window, held || history is null ? new Dictionary<string, long>() : Counters(pool, await NetByTenantAsync(pool, window).ConfigureAwait(false))));
        }

        var outcomes = await BaselineScript.EvaluateAsync(connection.GetDatabase(), keys, tag, restore, now.ToUnixTimeMilliseconds()).ConfigureAwait(false);
        if (outcomes is null)
        {
            return; // another replica set it first
        }

        for (var i = 0; i < restore.Count; i++)
        {
            var (pool, window, counters) = restore[i];
            metrics?.StoreBaseline(pool.Name, outcomes[i].ToString().ToLowerInvariant());
            if (outcomes[i] == BaselineOutcome.Restored)
            {
                QuotaLog.StoreCountersRestored(logger, pool.Name, counters.GetValueOrDefault(QuotaNode.RootField), window.Start);
            }
            else if (outcomes[i] == BaselineOutcome.Empty && history is null)
            {
                QuotaLog.StoreBaselineWithoutLedger(logger, pool.Name);
            }
        }
    }

    private async Task<IReadOnlyDictionary<string, long>> NetByTenantAsync(PoolDefinition pool, WindowBounds window)
    {
        try
        {
            return await history!.NetByTenantAsync(pool.Name, window, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new QuotaStoreUnavailableException($"The ledger did not say what pool {pool.Name} used in its window from {window.Start:o}: its counters cannot be restored yet.", ex);
        }
    }

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
