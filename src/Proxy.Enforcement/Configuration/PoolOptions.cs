using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Configuration;

public sealed record PoolOptions
{
    public long Limit { get; init; }

    public string Window { get; init; } = "";

    public string TimeZone { get; init; } = "UTC";

    /// <summary>Crossing it admits but warns (header, log once per window); unset means no warning.</summary>
    public long? SoftLimit { get; init; }

    /// <summary>
    /// Percentages of this node's (effective) limit at which a notification goes to every webhook of
    /// <c>Quota:Notifications</c>, once per threshold per window across all replicas, such as <c>[75, 90, 100]</c>.
    /// </summary>
    public List<int>? Notify { get; init; }

    /// <summary>A rate on this node, such as <c>10/s</c> or <c>600/m</c> (units s, m, h, d), checked by GCRA in the same decision.</summary>
    public string? Rate { get; init; }

    /// <summary>Credits the <see cref="Rate"/> lets through at once. Default 1: never more than the rate in any span of one unit.</summary>
    public long? Burst { get; init; }

    /// <summary>Requests of this node (with everything below it) that may be in flight at once; unset means no limit.</summary>
    public long? MaxInFlight { get; init; }

    /// <summary><c>Enforce</c> (default) or <c>Shadow</c>: decide and report, never reject. Tenants inherit it.</summary>
    public QuotaMode Mode { get; init; } = QuotaMode.Enforce;

    /// <summary>
    /// Credits one replica may admit for this pool per window while the store is unreachable, when
    /// <c>Quota:Store:OnUnavailable</c> is <c>AllowBounded</c>; journaled and charged when the store is back. Default 0.
    /// </summary>
    public long EmergencyAllowance { get; init; }

    /// <summary>
    /// The longest a vendor 429 closes the pool (its <c>Retry-After</c>, or the window's end without one, is
    /// capped to this, on the store's clock); the admin API's reopen ends a closure sooner. Default one hour.
    /// </summary>
    public TimeSpan MaxClosure { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Requests refused for a reason that frees itself soon wait for it instead (none: 429 at once).</summary>
    public WaitOptions? Wait { get; init; }

    /// <summary>Credit leases: each replica admits a tenant's requests from a block of credits it took in one debit (none: one store decision per request).</summary>
    public LeaseOptions? Lease { get; init; }

    /// <summary>The top of the tenant tree; each tenant may hold its own <see cref="TenantOptions.Tenants"/>.</summary>
    public Dictionary<string, TenantOptions> Tenants { get; init; } = new(StringComparer.Ordinal);
}
