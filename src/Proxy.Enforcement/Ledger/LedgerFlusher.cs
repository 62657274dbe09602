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
    QuotaModel model,
    LedgerWriter writer,
    LedgerOptions options,
    ILogger<LedgerFlusher> logger) : BackgroundService
{
    public const string Group = "ledger";

    private readonly string _consumer = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>Test hook: runs after a batch has committed and before it is acknowledged (throw to crash there).</summary>
    internal Action<IReadOnlyList<UsageEvent>>? AfterCommit { get; set; }

    /// <summary>Streams where this consumer may hold events it was given but never acknowledged (at start, after a failure).</summary>
    private readonly HashSet<RedisKey> _ownPendingMayExist = [];

    private readonly Dictionary<RedisKey, DateTime> _nextClaim = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var streams = model.Pools.Values.Select(pool => (Pool: pool, Key: keys.EventStream(pool))).ToList();
        var groupsReady = new HashSet<RedisKey>();
        var migrated = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            var moved = 0;
            try
            {
                if (!migrated)
                {
                    await LedgerSchema.MigrateAsync(options.ConnectionString!, stoppingToken);
                    migrated = true;
                }

                foreach (var (pool, key) in streams)
                {
                    if (groupsReady.Add(key))
                    {
                        await EnsureGroupAsync(key);
                        _ownPendingMayExist.Add(key);
                    }

                    moved += await FlushAsync(pool, key, stoppingToken);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                QuotaLog.LedgerFlushFailed(logger, ex.GetType().Name, ex.Message);
                QuotaMetrics.LedgerFlushErrors.Add(1);
                groupsReady.Clear();
                await ObserveBacklogAsync(streams);
                await Delay(options.RetryDelay, stoppingToken);
                continue;
            }

            await ObserveBacklogAsync(streams);
            if (moved == 0)
            {
                await Delay(options.PollInterval, stoppingToken);
            }
        }
    }

    /// <summary>Publishes each stream's length for <c>quotaproxy.ledger.backlog</c>, PostgreSQL or not.</summary>
    private async Task ObserveBacklogAsync(List<(PoolDefinition Pool, RedisKey Key)> streams)
    {
        try
        {
            foreach (var (pool, key) in streams)
            {
                QuotaMetrics.SetLedgerBacklog(pool.Name, await connection.GetDatabase().StreamLengthAsync(key));
            }
        }
        catch (RedisException)
        {
            // Redis is away too; the store's own outage handling covers requests.
        }
    }

    /// <summary>
    /// One batch from one stream: this consumer's own unacknowledged events after a failure (or at start),
    /// then, every ClaimIdle / 2, events idle in other consumers, else new ones.
    /// </summary>
    internal async Task<int> FlushAsync(PoolDefinition pool, RedisKey key, CancellationToken cancellationToken)
    {
        var database = connection.GetDatabase();
        StreamEntry[] entries = [];
        if (_ownPendingMayExist.Contains(key))
        {
            entries = await database.StreamReadGroupAsync(key, Group, _consumer, "0", options.BatchSize);
            if (entries.Length == 0)
            {
                _ownPendingMayExist.Remove(key);
            }
        }

        if (entries.Length == 0 && DateTime.UtcNow >= _nextClaim.GetValueOrDefault(key))
        {
            var claimed = await database.StreamAutoClaimAsync(key, Group, _consumer, (long)options.ClaimIdle.TotalMilliseconds, "0-0", options.BatchSize);
            entries = claimed.ClaimedEntries;
            if (entries.Length == 0)
            {
                _nextClaim[key] = DateTime.UtcNow + (options.ClaimIdle / 2);
            }
        }

        if (entries.Length == 0)
        {
            entries = await database.StreamReadGroupAsync(key, Group, _consumer, ">", options.BatchSize);
        }

        if (entries.Length == 0)
        {
            return 0;
        }

        var events = entries.Select(e => ToEvent(pool, key, e)).ToList();
        await writer.WriteAsync(events, cancellationToken);
        AfterCommit?.Invoke(events);
        RedisValue[] ackArguments = [Group, .. entries.Select(e => e.Id)];
        await database.ScriptEvaluateAsync(DebitScript.AckSource, [key], ackArguments);
        QuotaMetrics.LedgerEventsWritten.Add(events.Count, new KeyValuePair<string, object?>("pool", pool.Name));
        return events.Count;
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

    private static UsageEvent ToEvent(PoolDefinition pool, RedisKey key, StreamEntry entry)
    {
        var requestId = (string?)entry["q"];
        return new UsageEvent(
            EventId: $"{key}/{entry.Id}",
            OccurredAt: DateTimeOffset.FromUnixTimeMilliseconds((long)entry["t"]),
            Pool: pool.Name,
            Tenant: (string)entry["n"]!,
            Route: (string)entry["r"]!,
            Credits: (long)entry["c"],
            Kind: (string?)entry["k"] switch
            {
                "overage" => UsageKind.Overage,
                "refund" => UsageKind.Refund,
                "adjustment" => UsageKind.Adjustment,
                _ => UsageKind.Debit,
            },
            Shadow: (string?)entry["s"] == "1",
            RequestId: string.IsNullOrEmpty(requestId) ? null : requestId);
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
