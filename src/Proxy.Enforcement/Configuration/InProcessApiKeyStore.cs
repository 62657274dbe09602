using System.Collections.Concurrent;

namespace QuotaProxy.Enforcement.Configuration;

/// <summary>The embedded default's runtime API keys: in this process only, gone when it stops (one replica, no Redis).</summary>
internal sealed class InProcessApiKeyStore : IApiKeyStore
{
    private readonly ConcurrentDictionary<string, RuntimeApiKey> _keys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _lastUsed = new(StringComparer.Ordinal);
    private Action? _changed;

    public Task<IReadOnlyList<RuntimeApiKey>> LoadAsync(CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<RuntimeApiKey>>([.. _keys.Values]);

    public Task AddAsync(RuntimeApiKey key, CancellationToken cancellationToken)
    {
        _keys[key.Id] = key;
        _changed?.Invoke();
        return Task.CompletedTask;
    }

    public Task<bool> RevokeAsync(string id, CancellationToken cancellationToken)
    {
        var removed = _keys.TryRemove(id, out _);
        _changed?.Invoke();
        return Task.FromResult(removed);
    }

    public Task<IReadOnlyDictionary<string, long>> LastUsedAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyDictionary<string, long>>(new Dictionary<string, long>(_lastUsed));

    public Task RecordUseAsync(IReadOnlyDictionary<string, long> lastUsed, CancellationToken cancellationToken)
    {
        foreach (var (id, at) in lastUsed)
        {
            _lastUsed.AddOrUpdate(id, at, (_, before) => Math.Max(before, at));
        }

        return Task.CompletedTask;
    }

    public Task SubscribeAsync(Action changed)
    {
        _changed += changed;
        return Task.CompletedTask;
    }
}
