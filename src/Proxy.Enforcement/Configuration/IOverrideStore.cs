namespace QuotaProxy.Enforcement.Configuration;

/// <summary>Where runtime overrides live, and how a replica hears that another one changed them.</summary>
internal interface IOverrideStore
{
    Task<IReadOnlyList<TenantOverride>> LoadAsync(CancellationToken cancellationToken);

    /// <summary>Saves (or, with null, removes) one override and tells every replica.</summary>
    Task SaveAsync(string key, TenantOverride? value, CancellationToken cancellationToken);

    /// <summary>
    /// Removes the override at <paramref name="key"/> only if it is still <paramref name="expected"/>, and tells
    /// every replica. True for the one caller that removed it: of all the replicas that see a grant expire,
    /// one records its end.
    /// </summary>
    Task<bool> RemoveIfAsync(string key, TenantOverride expected, CancellationToken cancellationToken);

    /// <summary>Calls <paramref name="changed"/> whenever any replica saves an override.</summary>
    Task SubscribeAsync(Action changed);

    /// <summary>
    /// Tells every replica that <paramref name="pool"/>'s counters are being reset: the credit leases they
    /// hold of it were counted in what the reset gives back, so none of them may be spent or returned.
    /// </summary>
    Task AnnounceResetAsync(string pool, CancellationToken cancellationToken);

    /// <summary>Calls <paramref name="reset"/> with the pool's name whenever any replica announces a reset.</summary>
    Task SubscribeResetsAsync(Action<string> reset);
}
