using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// Counters in Redis: one <c>debit.lua</c> call per decision, one round trip. A decision that does not come
/// back within the store timeout, or cannot be sent because the connection is down, becomes a
/// <see cref="QuotaStoreUnavailableException"/> at once: commands are never queued behind an outage, and a
/// store that keeps failing is not called at all for a while (<see cref="StoreCircuitBreaker"/>).
/// <para>
/// A 503 costs nothing. Each decision carries a deadline on the Redis server's clock
/// (<see cref="RedisClock"/>), after which the script debits nothing; and a decision the proxy stopped
/// waiting for that still lands admitted (its reply late behind a stall, or lost with its connection) is
/// given back, with a ledger refund event (<see cref="AbandonedDecisions"/>).
/// </para>
/// </summary>
internal sealed class RedisQuotaStore : IQuotaStore
{
    /// <summary>What the deadline leaves for the reply's way back, within the store timeout.</summary>
    private static readonly TimeSpan ReplyAllowance = TimeSpan.FromMilliseconds(5);

    private readonly IConnectionMultiplexer _connection;
    private readonly RedisKeys _keys;
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<RedisQuotaStore> _logger;
    private readonly bool _useProxyClock;
    private readonly long _leaseMs;
    private readonly bool _ledger;
    private readonly long _maxBacklog;
    private readonly QuotaMetrics? _metrics;
    private readonly RedisClock _clock;
    private readonly BreakerOptions _breakerOptions;
    private readonly StoreBaselines _baselines;
    private readonly AbandonedDecisions _abandoned;
    private readonly LocalLag _lag;
    private readonly DebitBatches _batches;
    private readonly int _replicaAcks;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, StoreCircuitBreaker> _breakers = new(StringComparer.Ordinal);

    /// <param name="useProxyClock">Tests only: the proxy's clock decides windows instead of the server's (no deadlines then).</param>
    public RedisQuotaStore(
        IConnectionMultiplexer connection,
        RedisKeys keys,
        TimeSpan timeout,
        TimeProvider timeProvider,
        ILogger<RedisQuotaStore> logger,
        bool useProxyClock = false,
        TimeSpan? leaseTtl = null,
        bool ledger = false,
        long maxBacklog = 1_000_000,
        BreakerOptions? breaker = null,
        QuotaMetrics? metrics = null,
        StoreBaselines? baselines = null,
        IUsageHistory? history = null,
        int replicaAcks = 0)
    {
        _connection = connection;
        _keys = keys;
        _timeout = timeout;
        _timeProvider = timeProvider;
        _logger = logger;
        _useProxyClock = useProxyClock;
        _leaseMs = (long)(leaseTtl ?? QuotaLease.DefaultTtl).TotalMilliseconds;
        _ledger = ledger;
        _maxBacklog = maxBacklog;
        _metrics = metrics;
        _clock = new RedisClock(timeProvider);
        _breakerOptions = breaker ?? new BreakerOptions();
        _baselines = baselines ?? new StoreBaselines(connection, keys, timeProvider, logger, metrics: metrics);
        _lag = LocalLag.Shared;
        _batches = new DebitBatches(connection);
        _replicaAcks = replicaAcks;
        _abandoned = new AbandonedDecisions(
            connection, keys, timeout, timeProvider, logger, metrics, _clock, ledger, ledger && history is not null ? new LostReplies(keys, history) : null, replicaAcks,
            lease => ReleaseAsync(lease, CancellationToken.None).AsTask());
    }

    /// <summary>Calls that carried more than one decision (group commit, <see cref="DebitBatches"/>).</summary>
    internal long BatchedCalls => _batches.Batched;

    /// <summary>A decision's KEYS or ARGV that a batch did not send again (<see cref="DebitBatches.Shared"/>).</summary>
    internal long SharedArrays => _batches.Shared;

    /// <summary>The most <c>debit.lua</c> calls one hash tag had in flight at once (<see cref="DebitBatches.MostInFlight"/>).</summary>
    internal long MostCallsInFlight => _batches.MostInFlight;

    /// <summary>The pools (by the name that tags their keys) whose circuit is not closed, for <c>/readyz</c>.</summary>
    public IReadOnlyList<string> OpenCircuits =>
        [.. _breakers.Values.Where(b => b.State != Polly.CircuitBreaker.CircuitState.Closed).Select(b => b.Tag).Order(StringComparer.Ordinal)];

    /// <summary>
    /// Through the circuit of the keys' hash tag: the pools of a route share one, so a decision is one
    /// circuit's call, and a Redis Cluster shard that is down opens only the circuits of the pools it holds.
    /// </summary>
    public ValueTask<RouteDecision> DebitAsync(IReadOnlyList<QuotaDebit> debits, UsageContext? usage, CancellationToken cancellationToken) =>
        Breaker(debits[0].Pool.HashTag).ExecuteAsync(
            static (call, token) => call.Store.DecideAsync(call.Debits, call.Usage, token), (Store: this, Debits: debits, Usage: usage), cancellationToken);

    /// <summary>The decision a debit would get now, by the same script in its read-only mode (<c>peek</c>), through the same circuit.</summary>
    public ValueTask<RouteDecision> PeekAsync(IReadOnlyList<QuotaDebit> debits, CancellationToken cancellationToken) =>
        Breaker(debits[0].Pool.HashTag).ExecuteAsync(
            static (call, token) => call.Store.PeekCoreAsync(call.Debits, token), (Store: this, Debits: debits), cancellationToken);

    private async ValueTask<RouteDecision> PeekCoreAsync(IReadOnlyList<QuotaDebit> debits, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        if (_baselines.Auditing(debits[0].Pool.HashTag) is { IsCompleted: false } auditing)
        {
            await AwaitAuditAsync(auditing, debits[0].Pool, started, cancellationToken).ConfigureAwait(false);
        }

        var proxyNow = _timeProvider.GetUtcNow();
        // A node with MaxInFlight is checked for a slot; a peek takes none (the id is never written).
        var (redisKeys, args) = DebitScript.Arguments(
            _keys, debits, proxyNow, _useProxyClock ? (proxyNow - DateTimeOffset.UnixEpoch).Ticks / TimeSpan.TicksPerMicrosecond : 0,
            QuotaLease.Needed(debits) ? "peek" : null, _leaseMs, peek: true);
        var tag = debits[0].Pool.HashTag;
        try
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    var result = await AwaitAsync(_batches.EvaluateAsync(tag, redisKeys, args), Left(started), TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
                    return DebitScript.Read(result, debits, leaseId: null);
                }
                catch (RedisServerException ex) when (attempt < 3 && ex.Message.StartsWith(BaselineScript.MissingError, StringComparison.Ordinal))
                {
                    await EnsureBaselineAsync(debits, started, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (Exception ex) when (ex is TimeoutException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested) || IsStoreFailure(ex))
        {
            // Nothing to give back: a peek changes nothing, whenever it runs.
            QuotaLog.StoreUnavailable(_logger, debits[0].Pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis did not decide within {_timeout.TotalMilliseconds} ms.", ex);
        }
    }

    private StoreCircuitBreaker Breaker(string tag) =>
        _breakers.TryGetValue(tag, out var breaker)
            ? breaker
            : _breakers.GetOrAdd(tag, static (tag, store) => new StoreCircuitBreaker(tag, store._breakerOptions, store._timeProvider, store._metrics, store._logger), this);

    /// <summary>
    /// One <c>debit.lua</c> decision, sent with the others of its hash tag (<see cref="DebitBatches"/>: group
    /// commit, EVALSHA by the precomputed hash, EVAL when the server does not hold the script).
    /// </summary>
    private async ValueTask<RouteDecision> DecideAsync(IReadOnlyList<QuotaDebit> debits, UsageContext? usage, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        if (_baselines.Auditing(debits[0].Pool.HashTag) is { IsCompleted: false } auditing)
        {
            // After a reconnection or a failover the counters are held against the ledger first: a decision
            // taken on counters that lost writes could admit what was already spent.
            await AwaitAuditAsync(auditing, debits[0].Pool, started, cancellationToken).ConfigureAwait(false);
        }

        var proxyNow = _timeProvider.GetUtcNow();
        var leaseId = QuotaLease.Needed(debits) ? QuotaLease.NewId() : null;
        // While this process runs queued work late, its own queueing is added to the wait, up to one more
        // timeout. The deadline allows for the longest such wait, whatever the lag when the call is sent (a
        // burst's first calls leave before the lag shows): a decision Redis runs after the wait has ended
        // is given back like any late one, and one it runs while the proxy still waits is used.
        var grace = Grace();
        var deadline = _useProxyClock ? 0 : _clock.DeadlineMicros(proxyNow, _timeout + (_timeout > ReplyAllowance * 2 ? _timeout - ReplyAllowance : _timeout / 2));
        var (redisKeys, args) = DebitScript.Arguments(
            _keys, debits, proxyNow, _useProxyClock ? (proxyNow - DateTimeOffset.UnixEpoch).Ticks / TimeSpan.TicksPerMicrosecond : 0, leaseId, _leaseMs, usage, _ledger, _maxBacklog, deadline);
        var database = _connection.GetDatabase();
        var tag = debits[0].Pool.HashTag;
        var evaluation = _batches.EvaluateAsync(tag, redisKeys, args);
        try
        {
            RedisResult result;
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    result = await AwaitAsync(evaluation, Left(started), grace, cancellationToken).ConfigureAwait(false);
                    break;
                }
                catch (RedisServerException ex) when (attempt < 3 && ex.Message.StartsWith(BaselineScript.MissingError, StringComparison.Ordinal))
                {
                    // Redis has no baseline for these pools: it lost its data, or never had any. Their counters
                    // are restored before anything is decided; the same call then runs (its deadline still holds).
                    await EnsureBaselineAsync(debits, started, cancellationToken).ConfigureAwait(false);
                    evaluation = _batches.EvaluateAsync(tag, redisKeys, args);
                }
            }

            var decision = DebitScript.Read(result, debits, leaseId);
            _clock.Observe(decision.Pools[0].NowMs);
            if (!decision.Admitted && decision.Pools[decision.LimitingIndex].LimitedBy == QuotaLimitedBy.Expired)
            {
                _metrics?.AbandonedDecision("expired");
                throw new QuotaStoreUnavailableException($"Redis reached the decision after its deadline ({_timeout.TotalMilliseconds} ms); nothing was debited.");
            }

            // The warm-up's own pool is no tenant's: its decisions need no replica, and one a cold replica does
            // not confirm in time is no abandoned decision to count.
            if (_replicaAcks > 0 && decision.Admitted && !decision.Pools.All(pool => pool.Replayed) && debits[0].Pool.Name != RedisWarmup.PoolName)
            {
                await ConfirmOnReplicasAsync(database, redisKeys[0], debits, usage, decision, Span(proxyNow, deadline), started).ConfigureAwait(false);
            }

            return decision;
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            // The proxy stops waiting; the call may still run, or its reply may have come in since the wait
            // ended. Whatever it admits is given back when it lands (at once, if it already has).
            _ = _abandoned.GiveBackWhenLandedAsync(evaluation, debits, leaseId, usage, Span(proxyNow, deadline));
            if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested)
            {
                throw; // the caller went away: there is nobody to answer
            }

            QuotaLog.StoreUnavailable(_logger, debits[0].Pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis did not decide within {_timeout.TotalMilliseconds} ms.", ex);
        }
        catch (Exception ex) when (IsStoreFailure(ex))
        {
            // RedisServerException (a script error such as QP_CLOCK_SKEW, LOADING, READONLY) is a
            // RedisException too: whatever the store cannot decide, the outage policy answers.
            var lost = ex is RedisConnectionException or RedisTimeoutException;
            if (lost && _abandoned.CanResolve(usage))
            {
                // The connection failed with the call on it (Redis killed, a network cut): it may have run, and
                // its reply died with the connection. Looked up by its usage event after its deadline.
                _ = _abandoned.ResolveLostReplyAsync(debits, usage!, Span(proxyNow, deadline));
            }

            QuotaLog.StoreUnavailable(_logger, debits[0].Pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis did not decide within {_timeout.TotalMilliseconds} ms.", ex) { MayHaveDebited = lost };
        }
    }

    private TimeSpan Left(long started)
    {
        var left = _timeout - Stopwatch.GetElapsedTime(started);
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    /// <exception cref="QuotaStoreUnavailableException">The audit did not end within the timeout (it goes on).</exception>
    private async Task AwaitAuditAsync(Task auditing, PoolDefinition pool, long started, CancellationToken cancellationToken)
    {
        try
        {
            await auditing.WaitAsync(Left(started), cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException ex)
        {
            QuotaLog.StoreUnavailable(_logger, pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis's counters are being held against the ledger after a reconnection; pool {pool.Name} decides again once they are.", ex);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The audit failed (logged where it ran): the decision goes on from what Redis holds.
        }
    }

    /// <exception cref="QuotaStoreUnavailableException">The baseline was not set within what is left of the timeout (it goes on being set).</exception>
    private async Task EnsureBaselineAsync(IReadOnlyList<QuotaDebit> debits, long started, CancellationToken cancellationToken)
    {
        var pool = debits[0].Pool;
        try
        {
            await _baselines.EnsureAsync(pool.HashTag, debits.Select(debit => debit.Pool)).WaitAsync(Left(started), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is QuotaStoreUnavailableException || (IsStoreFailure(ex) && !cancellationToken.IsCancellationRequested))
        {
            QuotaLog.StoreUnavailable(_logger, pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis has no baseline for pool {pool.Name} yet: its counters are being restored.", ex);
        }
    }

    /// <summary>
    /// The call's reply within <paramref name="within"/>. A reply that is already there when the wait ends
    /// (the timer and the reply racing on a busy machine) is used, not thrown away. The timeout measures the
    /// store, not this process's own queueing: while queued work here runs late (<see cref="LocalLag"/>), a
    /// reply is read late by as much, and it is waited for that much longer (<paramref name="grace"/>, or the
    /// lag now if larger; at most one more timeout). The deadline keeps that safe: it allows for the longest
    /// wait, and a decision that lands after the wait is given back.
    /// </summary>
    private async Task<RedisResult> AwaitAsync(Task<RedisResult> call, TimeSpan within, TimeSpan grace, CancellationToken cancellationToken)
    {
        try
        {
            return await call.WaitAsync(within, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException && call.IsCompletedSuccessfully)
        {
            return call.Result;
        }
        catch (TimeoutException) when (Grace() is var now && (now > grace ? now : grace) is var more && more > TimeSpan.Zero)
        {
            try
            {
                return await call.WaitAsync(more, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is TimeoutException or OperationCanceledException && call.IsCompletedSuccessfully)
            {
                return call.Result;
            }
        }
    }

    /// <summary>How much longer than the timeout to wait for a reply: the process's lag, when it matters, up to one timeout.</summary>
    private TimeSpan Grace()
    {
        var lag = _lag.Recent;
        return lag < LagWorthWaiting ? TimeSpan.Zero : lag < _timeout ? lag : _timeout;
    }

    /// <summary>
    /// <c>WAIT</c>: the admitted debit is on <c>ReplicaAcks</c> replicas before the vendor is called, so a
    /// failover cannot lose it. WAIT covers every write this connection sent before it, so concurrent
    /// decisions share the replicas' acknowledgements. One not confirmed within the timeout is answered 503
    /// and treated as a lost reply: after its deadline it is looked up by its usage event on whatever master
    /// then holds the pool, and given back if it is there (without a ledger it stays charged).
    /// </summary>
    /// <exception cref="QuotaStoreUnavailableException">Fewer replicas than required acknowledged it in time.</exception>
    private async Task ConfirmOnReplicasAsync(
        IDatabase database, RedisKey key, IReadOnlyList<QuotaDebit> debits, UsageContext? usage, RouteDecision decision, (long FromMs, long ToMs) span, long started)
    {
        var acknowledged = await _abandoned.AcknowledgedAsync(database, key, Left(started)).ConfigureAwait(false);

        if (acknowledged >= _replicaAcks)
        {
            return;
        }

        _ = _abandoned.ReleaseQuietlyAsync(decision.Lease);
        if (_abandoned.CanResolve(usage))
        {
            _ = _abandoned.ResolveLostReplyAsync(debits, usage!, span);
        }
        else
        {
            _abandoned.Unresolved();
        }

        throw new QuotaStoreUnavailableException($"The debit reached {Math.Max(0, acknowledged)} of the {_replicaAcks} replica(s) it needs within {_timeout.TotalMilliseconds} ms; the vendor was not called.")
        {
            MayHaveDebited = true,
        };
    }

    /// <summary>Below this, queued work runs on time (a timer's ordinary jitter).</summary>
    private static readonly TimeSpan LagWorthWaiting = TimeSpan.FromMilliseconds(2);

    /// <summary>What a Redis call can throw when the store, the connection or its reply fails.</summary>
    internal static bool IsStoreFailure(Exception ex) =>
        ex is RedisException or TimeoutException or ObjectDisposedException or InvalidOperationException or InvalidCastException or OperationCanceledException;

    /// <summary>
    /// When, on the store's clock (Unix ms), a decision sent at <paramref name="proxyNow"/> could have run: from
    /// its sending to its deadline; without a deadline (no reply seen yet), a minute either side.
    /// </summary>
    private (long FromMs, long ToMs) Span(DateTimeOffset proxyNow, long deadlineMicros) => deadlineMicros > 0
        ? ((deadlineMicros / 1000) - (2 * (long)_timeout.TotalMilliseconds), deadlineMicros / 1000)
        : (proxyNow.ToUnixTimeMilliseconds() - 60_000, proxyNow.ToUnixTimeMilliseconds() + 60_000);

    /// <summary>
    /// Charges <paramref name="credits"/> on every node of the debits' paths, in the windows of
    /// <paramref name="decision"/>, with a <c>debit</c> usage event, once however often it is sent
    /// (<paramref name="operationId"/>): how an admission journaled during an outage reaches the store.
    /// </summary>
    /// <exception cref="QuotaStoreUnavailableException">The store did not answer within its timeout.</exception>
    public async Task ChargeOnceAsync(IReadOnlyList<QuotaDebit> debits, RouteDecision decision, long credits, UsageContext? usage, string operationId)
    {
        var database = _connection.GetDatabase();
        try
        {
            await AdjustScript.EvaluateAsync(database, _keys, debits, decision, credits, UsageKind.Debit, _ledger ? usage : null, operationId)
                .WaitAsync(_timeout)
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStoreFailure(ex))
        {
            throw new QuotaStoreUnavailableException($"Redis did not take journaled operation {operationId} within {_timeout.TotalMilliseconds} ms.", ex);
        }

        // Its event bills a call that happened: it leaves the journal only once the replicas hold it.
        await ConfirmBillingOnReplicasAsync(database, _keys.PoolUsage(debits[0].Pool), $"Journaled operation {operationId}").ConfigureAwait(false);
    }

    /// <summary>
    /// With ReplicaAcks, a write whose usage events bill calls that already happened (a lease's record, a
    /// journaled admission) counts as done only once the replicas hold it (<c>WAIT</c>), as a debit does before
    /// its call, so that a failover cannot lose it. One not confirmed throws and is sent again: both writes
    /// apply once however often they are sent, so a copy the new master already holds changes nothing.
    /// </summary>
    /// <exception cref="QuotaStoreUnavailableException">Fewer replicas than required acknowledged it in time.</exception>
    private async Task ConfirmBillingOnReplicasAsync(IDatabase database, RedisKey key, string what)
    {
        if (_replicaAcks == 0)
        {
            return;
        }

        var acknowledged = await _abandoned.AcknowledgedAsync(database, key, _timeout).ConfigureAwait(false);
        if (acknowledged < _replicaAcks)
        {
            throw new QuotaStoreUnavailableException($"{what} reached {Math.Max(0, acknowledged)} of the {_replicaAcks} replica(s) it needs within {_timeout.TotalMilliseconds} ms; it is sent again.");
        }
    }

    public async ValueTask CloseAsync(PoolDefinition pool, long untilMs, CancellationToken cancellationToken)
    {
        try
        {
            await CloseScript.EvaluateAsync(_connection.GetDatabase(), _keys, pool, untilMs)
                .WaitAsync(_timeout, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStoreFailure(ex))
        {
            QuotaLog.StoreUnavailable(_logger, pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis did not close pool {pool.Name} within {_timeout.TotalMilliseconds} ms.", ex);
        }
    }

    public async ValueTask<long> ReopenAsync(PoolDefinition pool, CancellationToken cancellationToken)
    {
        try
        {
            return await ReopenScript.EvaluateAsync(_connection.GetDatabase(), _keys, pool)
                .WaitAsync(_timeout, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStoreFailure(ex))
        {
            QuotaLog.StoreUnavailable(_logger, pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis did not reopen pool {pool.Name} within {_timeout.TotalMilliseconds} ms.", ex);
        }
    }

    public async ValueTask<int> AdjustAsync(IReadOnlyList<QuotaDebit> debits, RouteDecision decision, long delta, UsageKind kind, UsageContext? usage, CancellationToken cancellationToken)
    {
        try
        {
            return await AdjustScript.EvaluateAsync(_connection.GetDatabase(), _keys, debits, decision, delta, kind, _ledger ? usage : null)
                .WaitAsync(_timeout, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStoreFailure(ex))
        {
            QuotaLog.StoreUnavailable(_logger, debits[0].Pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis did not adjust the charge within {_timeout.TotalMilliseconds} ms.", ex);
        }
    }

    public async ValueTask RenewAsync(QuotaLease lease, CancellationToken cancellationToken)
    {
        try
        {
            await RenewScript.EvaluateAsync(_connection.GetDatabase(), _keys, lease, _leaseMs, _useProxyClock ? _timeProvider.GetUtcNow().ToUnixTimeMilliseconds() : 0)
                .WaitAsync(_timeout, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStoreFailure(ex))
        {
            QuotaLog.StoreUnavailable(_logger, lease.Debits[0].Pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis did not renew lease {lease.Id} within {_timeout.TotalMilliseconds} ms; it is tried again.", ex);
        }
    }

    public async ValueTask ReleaseAsync(QuotaLease lease, CancellationToken cancellationToken)
    {
        try
        {
            await ReleaseScript.EvaluateAsync(_connection.GetDatabase(), _keys, lease)
                .WaitAsync(_timeout, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStoreFailure(ex))
        {
            QuotaLog.StoreUnavailable(_logger, lease.Debits[0].Pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis did not release lease {lease.Id} within {_timeout.TotalMilliseconds} ms; it expires by itself.", ex);
        }
    }

    public async ValueTask<PoolUsage> ReadUsageAsync(PoolDefinition pool, CancellationToken cancellationToken)
    {
        var window = pool.Locate(_timeProvider.GetUtcNow());
        var counterFields = PoolUsage.CounterFields(pool);
        RedisValue[] fields = ["start", TreeAdmission.ClosedField, .. counterFields.Select(field => (RedisValue)field)];
        try
        {
            var values = await _connection.GetDatabase()
                .HashGetAsync(_keys.PoolUsage(pool), fields)
                .WaitAsync(_timeout, cancellationToken)
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
        catch (Exception ex) when (IsStoreFailure(ex))
        {
            QuotaLog.StoreUnavailable(_logger, pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis did not read pool {pool.Name} within {_timeout.TotalMilliseconds} ms.", ex);
        }
    }

    public async ValueTask ReturnLeaseAsync(QuotaDebit block, RouteDecision grant, long unspent, string operationId, CancellationToken cancellationToken)
    {
        try
        {
            await AdjustScript.EvaluateAsync(_connection.GetDatabase(), _keys, [block], grant, -unspent, UsageKind.Refund, null, operationId)
                .WaitAsync(_timeout, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStoreFailure(ex))
        {
            // Not logged here: the keeper sends it again every pass for a minute, then counts it forfeited.
            throw new QuotaStoreUnavailableException($"Redis did not take back lease return {operationId} within {_timeout.TotalMilliseconds} ms; it is sent again.", ex);
        }
    }

    private static readonly EmbeddedScript LeaseRecordScript = new("lease-record.lua");
    private static readonly EmbeddedScript LeaseSweepScript = new("lease-sweep.lua");

    public async ValueTask RecordLeaseAsync(PoolDefinition pool, LeaseRecord record, CancellationToken cancellationToken)
    {
        var args = new RedisValue[4 + (_ledger ? record.Spends.Count : 0)];
        args[0] = record.Id;
        args[1] = record.Sequence;
        args[2] = string.Create(CultureInfo.InvariantCulture, $"{record.ExpiresAtMs} {(record.Closed ? -1 : record.Unspent)}");
        args[3] = _ledger ? record.Tenant.Path : "";
        if (_ledger)
        {
            for (var i = 0; i < record.Spends.Count; i++)
            {
                var spend = record.Spends[i];
                args[4 + i] = UsageEventFormat.Pack(spend.AtMs, spend.Credits, spend.Kind, shadow: false, record.Tenant.Path, spend.Route, spend.RequestId);
            }
        }

        var database = _connection.GetDatabase();
        try
        {
            await database
                .ScriptEvaluateAsync(LeaseRecordScript.Source, [_keys.LeaseRecords(pool), _keys.EventStream(pool)], args)
                .WaitAsync(_timeout, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStoreFailure(ex))
        {
            // Not logged here: the keeper sends it again every pass, and logs it if it gives up (event 1500).
            throw new QuotaStoreUnavailableException($"Redis did not record lease {record.Id} of pool {pool.Name} within {_timeout.TotalMilliseconds} ms; it is sent again.", ex);
        }

        // The record holds the spends' usage events, the only billing of those calls.
        await ConfirmBillingOnReplicasAsync(database, _keys.LeaseRecords(pool), $"Lease {record.Id}'s record of pool {pool.Name}").ConfigureAwait(false);
    }

    public async ValueTask<(long Leases, long Credits)> SweepLeasesAsync(PoolDefinition pool, TimeSpan grace, TimeSpan keepEnded, CancellationToken cancellationToken)
    {
        try
        {
            var reply = (long[])(await _connection.GetDatabase()
                .ScriptEvaluateAsync(LeaseSweepScript.Source, [_keys.LeaseRecords(pool), _keys.EventStream(pool)], [_useProxyClock ? _timeProvider.GetUtcNow().ToUnixTimeMilliseconds() : 0, (long)grace.TotalMilliseconds, LeaseRecord.Route, (long)keepEnded.TotalMilliseconds])
                .WaitAsync(_timeout, cancellationToken)
                .ConfigureAwait(false))!;
            return (reply[0], reply[1]);
        }
        catch (Exception ex) when (IsStoreFailure(ex))
        {
            QuotaLog.StoreUnavailable(_logger, pool.Name, ex);
            throw new QuotaStoreUnavailableException($"Redis did not sweep the leases of pool {pool.Name} within {_timeout.TotalMilliseconds} ms.", ex);
        }
    }
}
