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
/// Its state is in <c>quota_proxy_store_breaker_open</c> and in <c>/readyz</c>.
/// </summary>
internal sealed class StoreCircuitBreaker
{
    private readonly ResiliencePipeline _pipeline;
    private readonly CircuitBreakerStateProvider _state = new();

    public StoreCircuitBreaker(BreakerOptions options, TimeProvider timeProvider, QuotaMetrics? metrics, ILogger logger)
    {
        metrics?.StoreBreakerOpen(false);
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
                    QuotaLog.StoreBreakerOpened(logger, args.BreakDuration.TotalMilliseconds, args.Outcome.Exception);
                    metrics?.StoreBreakerOpen(true);
                    return default;
                },
                OnClosed = _ =>
                {
                    QuotaLog.StoreBreakerClosed(logger);
                    metrics?.StoreBreakerOpen(false);
                    return default;
                },
            })
            .Build();
    }

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
