namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// A tenant tree node as configured, before defaults are resolved: what <see cref="QuotaNode"/> is built
/// from. Unset values take the defaults of the quota model (the parent's capacity and mode, the lowest
/// priority, no allocation).
/// </summary>
internal sealed record NodeSettings(
    long? Limit,
    long? Allocation,
    long? Guaranteed,
    int? Priority,
    long? SoftLimit,
    long? Overage,
    QuotaMode? Mode,
    QuotaRate? Rate,
    long? MaxInFlight,
    IReadOnlyDictionary<string, NodeSettings> Tenants);
