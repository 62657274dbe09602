namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// A tenant's Limit, Allocation or Guaranteed as changed at runtime through the admin API (null: the
/// configured value stands). Kept in the store, so every replica applies it and it outlives restarts.
/// With <see cref="ExpiresAt"/>, a grant that ends by itself: from then on no replica applies it.
/// </summary>
internal sealed record TenantOverride(string Pool, string Tenant, long? Limit, long? Allocation, long? Guaranteed, DateTimeOffset? ExpiresAt = null)
{
    public bool ExpiredAt(DateTimeOffset now) => ExpiresAt <= now;

    /// <summary>The override's identity in the store: one per pool and tenant path.</summary>
    public string Key => $"{Pool}/{Tenant}";

    /// <summary>
    /// The configured options with every override applied. An override whose pool or tenant is no longer
    /// configured is left out (and reported in <paramref name="stale"/>).
    /// </summary>
    public static QuotaOptions Apply(QuotaOptions options, IEnumerable<TenantOverride> overrides, List<string> stale)
    {
        var pools = new Dictionary<string, PoolOptions>(options.Pools, StringComparer.Ordinal);
        foreach (var change in overrides)
        {
            if (!pools.TryGetValue(change.Pool, out var pool) || Replace(pool.Tenants, change.Tenant.Split('/'), change) is not { } tenants)
            {
                stale.Add(change.Key);
                continue;
            }

            pools[change.Pool] = pool with { Tenants = tenants };
        }

        return options with { Pools = pools };
    }

    private static Dictionary<string, TenantOptions>? Replace(Dictionary<string, TenantOptions> tenants, string[] path, TenantOverride change)
    {
        if (!tenants.TryGetValue(path[0], out var tenant))
        {
            return null;
        }

        TenantOptions? replaced = tenant with
        {
            Limit = change.Limit ?? tenant.Limit,
            Allocation = change.Allocation ?? tenant.Allocation,
            Guaranteed = change.Guaranteed ?? tenant.Guaranteed,
        };
        if (path.Length > 1)
        {
            replaced = Replace(tenant.Tenants, path[1..], change) is { } children ? tenant with { Tenants = children } : null;
        }

        if (replaced is null)
        {
            return null;
        }

        return new Dictionary<string, TenantOptions>(tenants, StringComparer.Ordinal) { [path[0]] = replaced };
    }
}
