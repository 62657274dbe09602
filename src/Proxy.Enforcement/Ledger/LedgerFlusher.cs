using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;
using QuotaProxy.Enforcement.Redis;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Ledger;

/// <summary>
/// Moves usage events from each pool's Redis stream into the PostgreSQL ledger, in every replica. The
/// replicas share one consumer group, so each event goes to one of them; an event is acknowledged (and
/// deleted from the stream) only after the batch holding it has committed. A replica first re-reads what it
/// was given and never acknowledged (its own crash), then claims what other consumers left pending longer
/// than <see cref="LedgerOptions.ClaimIdle"/> (a replica that died), then reads new events. The writer is
/// idempotent on the event id, so a redelivered batch bills nothing twice. Nothing here is on a request's
/// path: while PostgreSQL is down, events simply wait in Redis.
/// </summary>
internal sealed class LedgerFlusher(
    IConnectionMultiplexer connection,
    RedisKeys keys,
    LiveConfiguration live,
    LedgerWriter writer,
    LedgerMigration migration,
    QuotaMetrics metrics,
    TimeProvider timeProvider,
    ILogger<LedgerFlusher> logger) : BackgroundService
{
    public const string Group = "ledger";

    /// <summary>The ledger's settings: a restart changes them, so the running values stay in force.</summary>
    private LedgerOptions Options => live.Options.Ledger;

    private readonly string _consumer = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>Test hook: runs after a batch has committed and before it is acknowledged (throw to crash there).</summary>
    internal Action<IReadOnlyList<UsageEvent>>? AfterCommit { get; set; }

    /// <summary>Streams where this consumer may hold events it was given but never acknowledged (at start, after a failure).</summary>
    private readonly HashSet<RedisKey> _ownPendingMayExist = [];

    private readonly Dictionary<RedisKey, DateTime> _nextClaim = [];

    /// <summary>Every stream this flusher knows, with the pool whose events it holds.</summary>
    private readonly Dictionary<RedisKey, PoolDefinition> _streams = [];

    /// <summary>
    /// Batches of new events being written and acknowledged while the next one is read, oldest first:
    /// at most <see cref="WritesInFlight"/>, so Redis and PostgreSQL (two of its connections) work at once.
    /// </summary>
    private readonly Queue<Task> _inFlight = new();

    internal const int WritesInFlight = 2;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var groupsReady = new HashSet<RedisKey>();
        var migrated = false;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var fullBatch = false;
                var failed = false;
                try
                {
                    if (!migrated)
                    {
                        await migration.EnsureAsync(stoppingToken);
                        migrated = true;
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    Failed("(schema)", ex);
                    await ObserveBacklogAsync();
                    await Delay(Options.RetryDelay, stoppingToken);
                    continue;
                }

                // Each stream on its own: a shard that is down (Redis Cluster) stops only the pools it holds.
                foreach (var (key, pool) in Streams())
                {
                    try
                    {
                        if (groupsReady.Add(key))
                        {
                            await EnsureGroupAsync(key);
                            _ownPendingMayExist.Add(key);
                        }

                        fullBatch |= await FlushAsync(pool, key, stoppingToken) == Options.BatchSize;
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                    {
                        Failed(pool.Name, ex);
                        failed = true;
                        groupsReady.Remove(key);
                        // A batch in flight may belong to any stream: each re-reads what it was given and did not acknowledge.
                        await SettleInFlightAsync();
                        _ownPendingMayExist.UnionWith(_streams.Keys);
                    }
                }

                await ObserveBacklogAsync();
                if (failed && !fullBatch)
                {
                    await Delay(Options.RetryDelay, stoppingToken);
                }
                else if (!fullBatch)
                {
                    // Every stream is drained: let events gather for a while rather than paying a read, a
                    // transaction and an acknowledgement for a handful of them. Under load a batch then fills
                    // (or the interval ends), so each event's share of those fixed costs stays small.
                    await Delay(Options.PollInterval, stoppingToken);
                }
            }
        }
        finally
        {
            // Stopping: the acknowledgements already sent are let through, so no committed batch is redelivered.
            await SettleInFlightAsync();
        }
    }

    private void Failed(string pool, Exception ex)
    {
        QuotaLog.LedgerFlushFailed(logger, pool, ex);
        metrics.LedgerFlushFailed();
    }

    /// <summary>
    /// The streams to flush: every pool's in the configuration in force (a reload may add pools, or re-tag
    /// one so that its events go to a new stream), and every stream seen before that still holds events.
    /// </summary>
    private List<(RedisKey Key, PoolDefinition Pool)> Streams()
    {
        foreach (var pool in live.Model.Pools.Values)
        {
            _streams[keys.EventStream(pool)] = pool;
        }

        return [.. _streams.Select(pair => (pair.Key, pair.Value))];
    }

    /// <summary>
    /// Publishes each stream's length for <c>quota_proxy_ledger_backlog_events</c>, PostgreSQL or not, and
    /// forgets a stream the configuration no longer names once it is empty.
    /// </summary>
    private async Task ObserveBacklogAsync()
    {
        try
        {
            var inForce = live.Model.Pools.Values.Select(keys.EventStream).ToHashSet();
            foreach (var (key, pool) in Streams())
            {
                var length = await connection.GetDatabase().StreamLengthAsync(key);
                metrics.LedgerBacklog(pool.Name, length);
                if (length == 0 && !inForce.Contains(key))
                {
                    _streams.Remove(key);
                }
            }
        }
        catch (Exception ex)
        {
            // Called from the flusher's own failure handling: it must not throw. Redis is likely away too;
            // the store's own outage handling covers requests.
            QuotaLog.LedgerBacklogUnknown(logger, ex);
        }
    }

    /// <summary>
    /// One batch from one stream: this consumer's own unacknowledged events after a failure (or at start),
    /// then, every ClaimIdle / 2, events idle in other consumers, else new ones.
    /// </summary>
    internal async Task<int> FlushAsync(PoolDefinition pool, RedisKey key, CancellationToken cancellationToken)
    {
        while (_inFlight.Count >= WritesInFlight)
        {
            await _inFlight.Dequeue();
        }

        var database = connection.GetDatabase();
        StreamEntry[] entries = [];
        var firstDelivery = false;
        if (_ownPendingMayExist.Contains(key))
        {
            entries = await database.StreamReadGroupAsync(key, Group, _consumer, "0", Options.BatchSize);
            if (entries.Length == 0)
            {
                _ownPendingMayExist.Remove(key);
            }
        }

        if (entries.Length == 0 && DateTime.UtcNow >= _nextClaim.GetValueOrDefault(key))
        {
            var claimed = await database.StreamAutoClaimAsync(key, Group, _consumer, (long)Options.ClaimIdle.TotalMilliseconds, "0-0", Options.BatchSize);
            entries = claimed.ClaimedEntries;
            if (entries.Length == 0)
            {
                _nextClaim[key] = DateTime.UtcNow + (Options.ClaimIdle / 2);
            }
        }

        if (entries.Length == 0)
        {
            entries = await database.StreamReadGroupAsync(key, Group, _consumer, ">", Options.BatchSize);
            firstDelivery = true;
        }

        if (entries.Length == 0)
        {
            await SettleInFlightAsync(throwOnFailure: true);
            return 0;
        }

        var events = entries.Select(e => UsageEventFormat.Read(pool.Name, key, e)).ToList();
        var write = WriteAndAcknowledgeAsync(database, pool, key, entries, events, firstDelivery, cancellationToken);
        if (entries.Length == Options.BatchSize)
        {
            // A full batch: more are waiting. The next pass reads them while this one is written.
            _inFlight.Enqueue(write);
        }
        else
        {
            await write;
            await SettleInFlightAsync(throwOnFailure: true);
        }

        return events.Count;
    }

    /// <summary>One batch to PostgreSQL, then (only once it has committed) acknowledged and deleted in Redis.</summary>
    private async Task WriteAndAcknowledgeAsync(
        IDatabase database, PoolDefinition pool, RedisKey key, StreamEntry[] entries, List<UsageEvent> events, bool firstDelivery, CancellationToken cancellationToken)
    {
        // Events never delivered before (a '>' read) can take the writer's faster path; redelivered ones
        // (this consumer's own pending, or claimed from another) may be in the ledger already.
        await (firstDelivery ? writer.WriteFirstDeliveryAsync(events, cancellationToken) : writer.WriteAsync(events, cancellationToken));
        var committed = timeProvider.GetUtcNow();
        AfterCommit?.Invoke(events);
        await AckScript.EvaluateAsync(database, key, Group, entries.Select(e => e.Id));
        metrics.LedgerFlushed(pool.Name, events.Count, events.Select(e => committed - e.OccurredAt));
    }

    /// <summary>
    /// Waits for every batch in flight. After a failure (and when stopping) their own failures are let go:
    /// a batch not acknowledged stays pending to this consumer, and the re-read of its own pending events that
    /// follows every failure brings it back (the writer ignores events it already has).
    /// </summary>
    private async Task SettleInFlightAsync(bool throwOnFailure = false)
    {
        while (_inFlight.TryDequeue(out var write))
        {
            try
            {
                await write;
            }
            catch (Exception) when (!throwOnFailure)
            {
                // Logged by the failure that led here, or stopping; see above.
            }
        }
    }

    private async Task EnsureGroupAsync(RedisKey key)
    {
        try
        {
            await connection.GetDatabase().StreamCreateConsumerGroupAsync(key, Group, "0", createStream: true);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal))
        {
            // Another replica, or an earlier run, created it.
        }
    }

    private static async Task Delay(TimeSpan delay, CancellationToken stoppingToken)
    {
        try
        {
            await Task.Delay(delay, stoppingToken);
        }
        catch (OperationCanceledException)
        {
        }
    }
}
