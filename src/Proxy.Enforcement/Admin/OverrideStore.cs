using System.Collections.Concurrent;
using System.Text.Json;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Admin;

/// <summary>Where runtime overrides live, and how a replica hears that another one changed them.</summary>
public interface IOverrideStore
{
    Task<IReadOnlyList<TenantOverride>> LoadAsync(CancellationToken cancellationToken);

    /// <summary>Saves (or, with null, removes) one override and tells every replica.</summary>
    Task SaveAsync(string key, TenantOverride? value, CancellationToken cancellationToken);

    /// <summary>Calls <paramref name="changed"/> whenever any replica saves an override.</summary>
    Task SubscribeAsync(Action changed);
}

/// <summary>
/// Overrides in one Redis hash (<c>{prefix}admin:overrides</c>, a JSON value per pool and tenant), shared
/// by every replica and kept as long as Redis keeps its data; each save is announced on
/// <c>{prefix}admin:changed</c> so that every replica reloads at once.
/// </summary>
internal sealed class RedisOverrideStore(IConnectionMultiplexer connection, string keyPrefix) : IOverrideStore
{
    private readonly RedisKey _hash = $"{keyPrefix}admin:overrides";
    private readonly RedisChannel _channel = RedisChannel.Literal($"{keyPrefix}admin:changed");

    public async Task<IReadOnlyList<TenantOverride>> LoadAsync(CancellationToken cancellationToken)
    {
        var entries = await connection.GetDatabase().HashGetAllAsync(_hash).WaitAsync(cancellationToken);
        return [.. entries.Select(entry => JsonSerializer.Deserialize<TenantOverride>((string)entry.Value!, AdminJson.Options)!)];
    }

    public async Task SaveAsync(string key, TenantOverride? value, CancellationToken cancellationToken)
    {
        var database = connection.GetDatabase();
        if (value is null)
        {
            await database.HashDeleteAsync(_hash, key).WaitAsync(cancellationToken);
        }
        else
        {
            await database.HashSetAsync(_hash, key, JsonSerializer.Serialize(value, AdminJson.Options)).WaitAsync(cancellationToken);
        }

        await connection.GetSubscriber().PublishAsync(_channel, key).WaitAsync(cancellationToken);
    }

    public Task SubscribeAsync(Action changed) => connection.GetSubscriber().SubscribeAsync(_channel, (_, _) => changed());
}

/// <summary>The embedded default's overrides: in this process only, gone when it stops (one replica, no Redis).</summary>
internal sealed class InProcessOverrideStore : IOverrideStore
{
    private readonly ConcurrentDictionary<string, TenantOverride> _overrides = new(StringComparer.Ordinal);
    private Action? _changed;

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

    public Task SubscribeAsync(Action changed)
    {
        _changed += changed;
        return Task.CompletedTask;
    }
}

internal static class AdminJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };
}
