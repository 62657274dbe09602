namespace QuotaProxy.Enforcement.Configuration;

public sealed record MetricsOptions
{
    /// <summary>How often every pool's and tenant's credits used are read from the store into the gauges, traffic or not.</summary>
    public TimeSpan UsageRefreshInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// ASP.NET Core's, the forwarder's HTTP client's and the runtime's own meters on /metrics too (request and
    /// upstream duration, GC, thread pool). Off by default: measured at about 13 % of the in-process proxy's
    /// throughput and 5 % on Redis (docs/benchmarks.md).
    /// </summary>
    public bool Platform { get; init; }
}
