using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Configuration;

/// <summary>Compiles options that <see cref="QuotaOptionsValidator"/> has accepted into the <see cref="QuotaModel"/> decisions use.</summary>
internal static class QuotaModelBuilder
{
    /// <param name="routePools">The pool lists of the metered routes: pools one route draws on together share a hash tag.</param>
    public static QuotaModel Build(QuotaOptions options, IEnumerable<IReadOnlyList<string>>? routePools = null) =>
        QuotaModel.Create(
            options.Pools.ToDictionary(pair => pair.Key, pair => Pool(pair.Key, pair.Value), StringComparer.Ordinal),
            routePools);

    private static PoolSettings Pool(string name, PoolOptions pool) => new(
        QuotaWindow.TryParse(pool.Window, out var window) ? window : throw new ArgumentException($"Pool '{name}' has an invalid window '{pool.Window}'.", nameof(pool)),
        TimeZoneInfo.FindSystemTimeZoneById(pool.TimeZone),
        new NodeSettings(pool.Limit, null, null, null, pool.SoftLimit, null, pool.Mode, Rate(pool.Rate, pool.Burst), pool.MaxInFlight, Tenants(pool.Tenants)),
        pool.EmergencyAllowance,
        pool.MaxClosure,
        pool.Lease is { } lease ? new LeaseSettings(lease.MaxCredits, lease.Ttl) : null);

    private static Dictionary<string, NodeSettings> Tenants(Dictionary<string, TenantOptions> tenants) =>
        tenants.ToDictionary(
            pair => pair.Key,
            pair => new NodeSettings(
                pair.Value.Limit,
                pair.Value.Allocation,
                pair.Value.Guaranteed,
                pair.Value.Priority,
                pair.Value.SoftLimit,
                pair.Value.Overage,
                pair.Value.Mode,
                Rate(pair.Value.Rate, pair.Value.Burst),
                pair.Value.MaxInFlight,
                Tenants(pair.Value.Tenants)),
            StringComparer.Ordinal);

    private static QuotaRate? Rate(string? text, long? burst) =>
        text is null ? null
        : QuotaRate.TryParse(text, burst ?? 1, out var rate) ? rate
        : throw new ArgumentException($"Invalid rate '{text}' with burst {burst}; the validator should have refused it.", nameof(text));
}
