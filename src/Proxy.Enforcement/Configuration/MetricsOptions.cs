namespace QuotaProxy.Enforcement.Configuration;

public sealed record MetricsOptions
{
    /// <summary>How often every pool's and tenant's credits used are read from the store into the gauges, traffic or not.</summary>
    public TimeSpan UsageRefreshInterval { get; init; } = TimeSpan.FromSeconds(15);
}
