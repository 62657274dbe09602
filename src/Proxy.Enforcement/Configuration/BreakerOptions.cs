namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// <c>Quota:Store:Breaker</c>: the circuit breaker in front of the store. When at least
/// <see cref="MinimumThroughput"/> calls in <see cref="SamplingDuration"/> fail at a ratio of
/// <see cref="FailureRatio"/> or more, the store is not called for <see cref="BreakDuration"/>: requests get
/// the outage policy at once. Then one probe call decides whether it closes again.
/// </summary>
public sealed record BreakerOptions
{
    public double FailureRatio { get; init; } = 0.5;

    public int MinimumThroughput { get; init; } = 100;

    public TimeSpan SamplingDuration { get; init; } = TimeSpan.FromSeconds(2);

    public TimeSpan BreakDuration { get; init; } = TimeSpan.FromSeconds(1);
}
