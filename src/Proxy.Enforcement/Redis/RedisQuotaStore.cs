using System.Diagnostics;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// Counters in Redis: one <c>debit.lua</c> call per decision, one round trip. A decision that does not come
/// back within the store timeout, or cannot be sent because the connection is down, becomes a
/// <see cref="QuotaStoreUnavailableException"/> at once: commands are never queued behind an outage.
/// </summary>
internal sealed class RedisQuotaStore(
    IConnectionMultiplexer connection,
    RedisKeys keys,
    TimeSpan timeout,
    TimeProvider timeProvider,
    ILogger<RedisQuotaStore> logger,
    bool useProxyClock = false,
    TimeSpan? leaseTtl = null,
    bool ledger = false,
    long maxBacklog = 1_000_000) : IQuotaStore
{
    private readonly long _leaseMs = (long)(leaseTtl ?? QuotaLease.DefaultTtl).TotalMilliseconds;

    /// <summary>
    /// EVALSHA by the script's precomputed hash; when the server does not hold the script (a restart, a
    /// failover, <c>SCRIPT FLUSH</c>), EVAL once, which also loads it again. Elsewhere StackExchange.Redis
    /// manages script hashes; its string overload hashes the whole script text on every call, a cost the
    /// hot path measurably paid (docs/benchmarks.md), so this one call passes the precomputed hash.
    /// </summary>
    public async ValueTask<RouteDecision> DebitAsync(IReadOnlyList<QuotaDebit> debits, UsageContext? usage, CancellationToken cancellationToken)
    {
        var proxyNow = timeProvider.GetUtcNow();
        var leaseId = QuotaLease.Needed(debits) ? QuotaLease.NewId() : null;
        var (redisKeys, args) = DebitScript.Arguments(keys, debits, proxyNow, useProxyClock ? (proxyNow - DateTimeOffset.UnixEpoch).Ticks / TimeSpan.TicksPerMicrosecond : 0, leaseId, _leaseMs, usage, ledger, maxBacklog);
        var started = Stopwatch.GetTimestamp();
        var database = connection.GetDatabase();
        try
        {
            RedisResult result;
            try
            {
                result = await database.ScriptEvaluateAsync(DebitScript.Script.Sha1, redisKeys, args)
                    .WaitAsync(timeout, cancellationToken)
                    .ConfigureAwait(false);
            }
            catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
            {
                // The server does not hold the script (a restart, a failover, SCRIPT FLUSH): the same call once
                // as EVAL, which also loads it again, in what is left of the timeout.
                var left = timeout - Stopwatch.GetElapsedTime(started);
                result = await database.ScriptEvaluateAsync(DebitScript.Script.Source, redisKeys, args)
                    .WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, cancellationToken)
                    .ConfigureAwait(false);
            }

            return DebitScript.Read(result, debits, leaseId);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // RedisServerException (a script error such as QP_CLOCK_SKEW, LOADING, READONLY) is a
            // RedisException too: whatever the store cannot decide, the outage policy answers.
            QuotaLog.StoreUnavailable(logger, debits[0].Pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis did not decide within {timeout.TotalMilliseconds} ms.", ex);
        }
    }

    public async ValueTask CloseAsync(PoolDefinition pool, long untilMs, CancellationToken cancellationToken)
    {
        try
        {
            await CloseScript.EvaluateAsync(connection.GetDatabase(), keys, pool, untilMs)
                .WaitAsync(timeout, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            QuotaLog.StoreUnavailable(logger, pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis did not close pool {pool.Name} within {timeout.TotalMilliseconds} ms.", ex);
        }
    }

    public async ValueTask<int> AdjustAsync(IReadOnlyList<QuotaDebit> debits, RouteDecision decision, long delta, UsageKind kind, UsageContext? usage, CancellationToken cancellationToken)
    {
        try
        {
            return await AdjustScript.EvaluateAsync(connection.GetDatabase(), keys, debits, decision, delta, kind, ledger ? usage : null)
                .WaitAsync(timeout, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            QuotaLog.StoreUnavailable(logger, debits[0].Pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis did not adjust the charge within {timeout.TotalMilliseconds} ms.", ex);
        }
    }

    public async ValueTask ReleaseAsync(QuotaLease lease, CancellationToken cancellationToken)
    {
        try
        {
            await ReleaseScript.EvaluateAsync(connection.GetDatabase(), keys, lease)
                .WaitAsync(timeout, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            QuotaLog.StoreUnavailable(logger, lease.Debits[0].Pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis did not release lease {lease.Id} within {timeout.TotalMilliseconds} ms; it expires by itself.", ex);
        }
    }

    public async ValueTask<PoolUsage> ReadUsageAsync(PoolDefinition pool, CancellationToken cancellationToken)
    {
        var window = pool.Locate(timeProvider.GetUtcNow());
        var counterFields = PoolUsage.CounterFields(pool);
        RedisValue[] fields = ["start", TreeAdmission.ClosedField, .. counterFields.Select(field => (RedisValue)field)];
        try
        {
            var values = await connection.GetDatabase()
                .HashGetAsync(keys.PoolUsage(pool), fields)
                .WaitAsync(timeout, cancellationToken)
                .ConfigureAwait(false);
            // The hash belongs to the window its start names; an older one means no decision has opened this window yet.
            var current = (long?)values[0] == window.StartMs;
            var counters = new Dictionary<string, long>(StringComparer.Ordinal);
            for (var i = 0; i < counterFields.Count; i++)
            {
                counters[counterFields[i]] = current ? (long?)values[i + 2] ?? 0 : 0;
            }

            return new PoolUsage(window, counters, (long?)values[1] ?? 0);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            QuotaLog.StoreUnavailable(logger, pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis did not read pool {pool.Name} within {timeout.TotalMilliseconds} ms.", ex);
        }
    }
}
