using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Http;

/// <summary>
/// Waiting for capacity instead of an instant 429 (a pool's <c>Wait</c>). A request refused for a reason that
/// frees itself within the pool's <c>MaxWait</c> (a rate: when its next credit fits; a vendor closure: when
/// it ends; the window: when it resets; a MaxInFlight: polled every 20 ms) joins its pool's queue in this
/// replica. One loop per pool tries the waiters that are due, highest priority first, then in arrival
/// order, each with an ordinary debit (so nothing is ever admitted past a limit); while another replica holds
/// a ticket for a higher priority, this replica's lower-priority waiters hold back. A waiter leaves admitted,
/// or at its <c>MaxWait</c> with the usual 429, or when its caller disconnects; one more than
/// <c>MaxQueued</c> gets 429 at once.
/// </summary>
internal sealed class CapacityWaiter(IQuotaStore store, IWaitTickets tickets, QuotaMetrics metrics, TimeProvider time, ILogger<CapacityWaiter> logger)
{
    internal static readonly TimeSpan ConcurrencyPoll = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan TicketLifetime = TimeSpan.FromMilliseconds(500);

    private readonly ConcurrentDictionary<string, PoolQueue> _queues = new(StringComparer.Ordinal);

    // For the pools' queues (nested types do not see the primary constructor's parameters).
    private IQuotaStore Store => store;
    private IWaitTickets Tickets => tickets;
    private QuotaMetrics Metrics => metrics;
    private TimeProvider Time => time;
    private ILogger Logger => logger;
    private long _arrivals;

    /// <returns>
    /// Null when the request does not wait (its refusal does not free itself within the wait, or the queue is
    /// full: answer the refusal now); else its final decision: admitted, or the last refusal at its MaxWait.
    /// </returns>
    /// <exception cref="OperationCanceledException">The caller went away while waiting.</exception>
    /// <exception cref="QuotaStoreUnavailableException">The store stopped answering while it waited.</exception>
    public Task<RouteDecision>? TryWait(QuotaDebit[] debits, UsageContext? usage, RouteDecision refused, QuotaOptions options, CancellationToken aborted)
    {
        var pool = debits[refused.LimitingIndex].Pool;
        if (!options.Pools.TryGetValue(pool.Name, out var poolOptions) || poolOptions.Wait is not { } wait)
        {
            return null;
        }

        var now = time.GetUtcNow();
        var deadline = now + wait.MaxWait;
        if (NextAttempt(refused, now) is not { } next || next > deadline)
        {
            return null;
        }

        var queue = _queues.GetOrAdd(pool.Name, static (name, waiter) => new PoolQueue(name, waiter), this);
        var waiter = new Waiter(debits, usage, debits[0].Tenant.Priority, Interlocked.Increment(ref _arrivals), now, deadline, aborted) { NextAt = next, Last = refused };
        if (!queue.TryAdd(waiter, wait.MaxQueued))
        {
            metrics.Waited(pool.Name, "queue_full", 0);
            return null;
        }

        return waiter.Decision.Task;
    }

    /// <summary>When a refusal may turn: null when it does not free itself (credits held for a window that outlives the wait are found by the caller's deadline).</summary>
    private static DateTimeOffset? NextAttempt(RouteDecision refused, DateTimeOffset now)
    {
        var decision = refused.Pools[refused.LimitingIndex];
        return decision.LimitedBy switch
        {
            QuotaLimitedBy.Rate or QuotaLimitedBy.Vendor => now + TimeSpan.FromMicroseconds(decision.RetryAfterMicros + 1000),
            QuotaLimitedBy.Concurrency => now + ConcurrencyPoll,
            QuotaLimitedBy.Tenant or QuotaLimitedBy.Pool or QuotaLimitedBy.Reserved => DateTimeOffset.FromUnixTimeMilliseconds(decision.Window.EndMs + 10),
            _ => null,
        };
    }

    private sealed class Waiter(QuotaDebit[] debits, UsageContext? usage, int priority, long arrival, DateTimeOffset joined, DateTimeOffset deadline, CancellationToken aborted)
    {
        public QuotaDebit[] Debits => debits;
        public UsageContext? Usage => usage;
        public int Priority => priority;
        public long Arrival => arrival;
        public DateTimeOffset Joined => joined;
        public DateTimeOffset Deadline => deadline;
        public CancellationToken Aborted => aborted;
        public DateTimeOffset NextAt { get; set; }
        public required RouteDecision Last { get; set; }
        public TaskCompletionSource<RouteDecision> Decision { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class PoolQueue(string pool, CapacityWaiter owner)
    {
        private readonly List<Waiter> _waiters = [];
        private readonly SemaphoreSlim _arrived = new(0);
        private int _looping;

        public bool TryAdd(Waiter waiter, int maxQueued)
        {
            lock (_waiters)
            {
                if (_waiters.Count >= maxQueued)
                {
                    return false;
                }

                _waiters.Add(waiter);
                owner.Metrics.Waiting(pool, _waiters.Count);
            }

            // A caller that leaves wakes the loop, which lets it go.
            waiter.Aborted.Register(static state => ((SemaphoreSlim)state!).Release(), _arrived);
            _arrived.Release();
            if (Interlocked.Exchange(ref _looping, 1) == 0)
            {
                _ = Task.Run(LoopAsync);
            }

            return true;
        }

        private async Task LoopAsync()
        {
            while (true)
            {
                List<Waiter> waiting;
                lock (_waiters)
                {
                    if (_waiters.Count == 0)
                    {
                        // Idle: the next waiter starts the loop again.
                        Volatile.Write(ref _looping, 0);
                        _ = owner.Tickets.HoldAsync(pool, null, TicketLifetime, CancellationToken.None);
                        return;
                    }

                    waiting = [.. _waiters.OrderBy(w => w.Priority).ThenBy(w => w.Arrival)];
                }

                try
                {
                    await PassAsync(waiting);
                }
                catch (Exception ex)
                {
                    // A pass survives anything; its waiters are tried again at the next.
                    QuotaLog.WaitPassFailed(owner.Logger, ex, pool);
                }

                DateTimeOffset next;
                lock (_waiters)
                {
                    next = _waiters.Count == 0 ? owner.Time.GetUtcNow() : _waiters.Min(w => w.NextAt < w.Deadline ? w.NextAt : w.Deadline);
                }

                var delay = next - owner.Time.GetUtcNow();
                if (delay > TimeSpan.Zero)
                {
                    await _arrived.WaitAsync(delay > TicketLifetime / 2 ? TicketLifetime / 2 : delay);
                }
            }
        }

        /// <summary>One pass over the waiters, highest priority first: each due one is tried once.</summary>
        private async Task PassAsync(List<Waiter> waiting)
        {
            await owner.Tickets.HoldAsync(pool, waiting[0].Priority, TicketLifetime, CancellationToken.None);
            var other = await owner.Tickets.BestOtherAsync(pool, CancellationToken.None);
            foreach (var waiter in waiting)
            {
                var now = owner.Time.GetUtcNow();
                if (waiter.Aborted.IsCancellationRequested)
                {
                    Leave(waiter, "client_closed", now);
                    waiter.Decision.TrySetCanceled(waiter.Aborted);
                    continue;
                }

                if (now >= waiter.Deadline)
                {
                    Leave(waiter, "timed_out", now);
                    waiter.Decision.TrySetResult(waiter.Last);
                    continue;
                }

                if (waiter.NextAt > now || (other is { } better && better < waiter.Priority))
                {
                    // Not due yet, or a higher priority waits on another replica: its turn comes first.
                    waiter.NextAt = waiter.NextAt > now ? waiter.NextAt : now + ConcurrencyPoll;
                    continue;
                }

                RouteDecision decision;
                try
                {
                    decision = await owner.Store.DebitAsync(waiter.Debits, waiter.Usage, waiter.Aborted);
                }
                catch (OperationCanceledException) when (waiter.Aborted.IsCancellationRequested)
                {
                    Leave(waiter, "client_closed", owner.Time.GetUtcNow());
                    waiter.Decision.TrySetCanceled(waiter.Aborted);
                    continue;
                }
                catch (QuotaStoreUnavailableException ex)
                {
                    Leave(waiter, "store_unavailable", owner.Time.GetUtcNow());
                    waiter.Decision.TrySetException(ex);
                    continue;
                }

                now = owner.Time.GetUtcNow();
                if (decision.Admitted)
                {
                    Leave(waiter, "admitted", now);
                    waiter.Decision.TrySetResult(decision);
                    continue;
                }

                waiter.Last = decision;
                if (NextAttempt(decision, now) is not { } next || next > waiter.Deadline)
                {
                    Leave(waiter, "timed_out", now);
                    waiter.Decision.TrySetResult(decision);
                    continue;
                }

                waiter.NextAt = next;
            }
        }

        private void Leave(Waiter waiter, string outcome, DateTimeOffset now)
        {
            lock (_waiters)
            {
                _waiters.Remove(waiter);
                owner.Metrics.Waiting(pool, _waiters.Count);
            }

            owner.Metrics.Waited(pool, outcome, (now - waiter.Joined).TotalSeconds);
        }
    }
}
