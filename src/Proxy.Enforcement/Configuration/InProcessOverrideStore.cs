using System.Collections.Concurrent;

namespace QuotaProxy.Enforcement.Configuration;

/// <summary>The embedded default's overrides: in this process only, gone when it stops (one replica, no Redis).</summary>
internal sealed class InProcessOverrideStore : IOverrideStore
{
    private readonly ConcurrentDictionary<string, TenantOverride> _overrides = new(StringComparer.Ordinal);
    private Action? _changed;
    private Action<string>? _reset;

    public Task<IReadOnlyList<TenantOverride>> LoadAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<TenantOverride>>([.. _overrides.Values]);

    public Task SaveAsync(string key, TenantOverride? value, CancellationToken cancellationToken)
    {
        if (value is null)
        {
            _overrides.TryRemove(key, out _);
        }
        else
        {
            _overrides[key] = value;
        }

        _changed?.Invoke();
        return Task.CompletedTask;
    }

    public Task<bool> RemoveIfAsync(string key, TenantOverride expected, CancellationToken cancellationToken)
    {
        var removed = _overrides.TryRemove(new KeyValuePair<string, TenantOverride>(key, expected));
        if (removed)
        {
            _changed?.Invoke();
        }

        return Task.FromResult(removed);
    }

    public Task SubscribeAsync(Action changed)
    {
        _changed += changed;
        return Task.CompletedTask;
    }

    public Task AnnounceResetAsync(string pool, CancellationToken cancellationToken)
    {
        _reset?.Invoke(pool);
        return Task.CompletedTask;
    }

    public Task SubscribeResetsAsync(Action<string> reset)
    {
        _reset += reset;
        return Task.CompletedTask;
    }
}
