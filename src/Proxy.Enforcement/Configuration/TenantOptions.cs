using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Configuration;

/// <summary>One node of a pool's tenant tree (organisation, environment, team, user: any depth).</summary>
public sealed record TenantOptions
{
    /// <summary>Ceiling per window for this node with everything below it; unset means the parent's capacity.</summary>
    public long? Limit { get; init; }

    /// <summary>Its share: while unused, protected from tenants of lower priority. Default 0.</summary>
    public long? Allocation { get; init; }

    /// <summary>Its floor: while unused, protected from everyone. Default: the Allocation.</summary>
    public long? Guaranteed { get; init; }

    /// <summary>1 is the highest; unset is the lowest of all.</summary>
    public int? Priority { get; init; }

    /// <summary>Crossing it admits but warns (header, log once per window); unset means no warning.</summary>
    public long? SoftLimit { get; init; }

    /// <summary>
    /// Percentages of this node's (effective) limit at which a notification goes to every webhook of
    /// <c>Quota:Notifications</c>, once per threshold per window across all replicas, such as <c>[75, 90, 100]</c>.
    /// </summary>
    public List<int>? Notify { get; init; }

    /// <summary>Credits above Limit still admitted while the parent has room, marked as overage. Default 0.</summary>
    public long? Overage { get; init; }

    /// <summary>A rate on this node, such as <c>10/s</c> or <c>600/m</c> (units s, m, h, d), checked by GCRA in the same decision.</summary>
    public string? Rate { get; init; }

    /// <summary>Credits the <see cref="Rate"/> lets through at once. Default 1: never more than the rate in any span of one unit.</summary>
    public long? Burst { get; init; }

    /// <summary>Requests of this node (with everything below it) that may be in flight at once; unset means no limit.</summary>
    public long? MaxInFlight { get; init; }

    /// <summary>Unset inherits the parent's mode.</summary>
    public QuotaMode? Mode { get; init; }

    public Dictionary<string, TenantOptions> Tenants { get; init; } = new(StringComparer.Ordinal);
}
