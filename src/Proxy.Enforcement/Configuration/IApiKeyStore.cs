namespace QuotaProxy.Enforcement.Configuration;

/// <summary>Where the admin API's runtime API keys live (digests only), and how a replica hears of a change.</summary>
internal interface IApiKeyStore
{
    Task<IReadOnlyList<RuntimeApiKey>> LoadAsync(CancellationToken cancellationToken);

    Task AddAsync(RuntimeApiKey key, CancellationToken cancellationToken);

    /// <returns>False when no key has that id.</returns>
    Task<bool> RevokeAsync(string id, CancellationToken cancellationToken);

    /// <summary>When each key was last used (Unix ms), as recorded by every replica.</summary>
    Task<IReadOnlyDictionary<string, long>> LastUsedAsync(CancellationToken cancellationToken);

    /// <summary>Records uses seen by this replica; a later time replaces an earlier one, never the other way.</summary>
    Task RecordUseAsync(IReadOnlyDictionary<string, long> lastUsed, CancellationToken cancellationToken);

    /// <summary>Calls <paramref name="changed"/> whenever any replica adds or revokes a key.</summary>
    Task SubscribeAsync(Action changed);
}
