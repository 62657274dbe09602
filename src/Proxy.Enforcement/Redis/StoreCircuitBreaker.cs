using Microsoft.Extensions.Logging;
using Polly;
using Polly.CircuitBreaker;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// Stops waiting for a store that keeps failing (Polly's circuit breaker): while open, a call fails at
/// once with <see cref="QuotaStoreUnavailableException"/>, so requests get the outage policy in
/// microseconds instead of a timeout each; after the break one probe call decides whether it closes.
/// One breaker guards the keys of one hash tag (one Redis Cluster slot): a shard that is down opens the
/// circuits of the pools it holds, and the others keep deciding. Its state is in
/// <c>quota_proxy_store_breaker_open{pool}</c> and in <c>/readyz</c>.
/// </summary>
internal sealed class StoreCircuitBreaker
{
    private readonly ResiliencePipeline _pipeline;
    private readonly CircuitBreakerStateProvider _state = new();

    /// <param name="tag">The hash tag (a pool's name) of the keys this circuit guards.</param>
    public StoreCircuitBreaker(string tag, BreakerOptions options, TimeProvider timeProvider, QuotaMetrics? metrics, ILogger logger)
    {
        Tag = tag;
        metrics?.StoreBreakerOpen(tag, false);
        _pipeline = new ResiliencePipelineBuilder { TimeProvider = timeProvider }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                FailureRatio = options.FailureRatio,
                MinimumThroughput = options.MinimumThroughput,
                SamplingDuration = options.SamplingDuration,
                BreakDuration = options.BreakDuration,
                ShouldHandle = new PredicateBuilder().Handle<QuotaStoreUnavailableException>(),
                StateProvider = _state,
                OnOpened = args =>
                {
                    QuotaLog.StoreBreakerOpened(logger, tag, args.BreakDuration.TotalMilliseconds, args.Outcome.Exception);
                    metrics?.StoreBreakerOpen(tag, true);
                    return default;
                },
                OnClosed = _ =>
                {
                    QuotaLog.StoreBreakerClosed(logger, tag);
                    metrics?.StoreBreakerOpen(tag, false);
                    return default;
                },
            })
            .Build();
    }

    public string Tag { get; }

    /// <summary>Closed (calls go through), Open (calls fail at once), HalfOpen (one probe is under way).</summary>
    public CircuitState State => _state.CircuitState;

    /// <exception cref="QuotaStoreUnavailableException">The call failed, or the circuit is open and it was not made.</exception>
    public async ValueTask<TResult> ExecuteAsync<TResult, TState>(Func<TState, CancellationToken, ValueTask<TResult>> call, TState state, CancellationToken cancellationToken)
    {
        try
        {
            return await _pipeline.ExecuteAsync(call, state, cancellationToken).ConfigureAwait(false);
        }
        catch (BrokenCircuitException ex)
        {
            throw new QuotaStoreUnavailableException("The store failed repeatedly; its circuit is open, so it was not called.", ex);
        }
    }
}
