using System.Text.Json;
using StackExchange.Redis;

using QuotaProxy.Enforcement.Configuration;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// Overrides in one Redis hash (<c>{prefix}admin:overrides</c>, a JSON value per pool and tenant), shared
/// by every replica and kept as long as Redis keeps its data; each save is announced on
/// <c>{prefix}admin:changed</c> so that every replica reloads at once; a pool's reset is announced on
/// <c>{prefix}admin:reset</c> (its credit leases are void).
/// </summary>
internal sealed class RedisOverrideStore(IConnectionMultiplexer connection, string keyPrefix) : IOverrideStore
{
    private readonly RedisKey _hash = $"{keyPrefix}admin:overrides";
    private readonly RedisChannel _channel = RedisChannel.Literal($"{keyPrefix}admin:changed");
    private readonly RedisChannel _resets = RedisChannel.Literal($"{keyPrefix}admin:reset");

    public async Task<IReadOnlyList<TenantOverride>> LoadAsync(CancellationToken cancellationToken)
    {
        var entries = await connection.GetDatabase().HashGetAllAsync(_hash).WaitAsync(cancellationToken);
        return [.. entries.Select(entry => JsonSerializer.Deserialize<TenantOverride>((string)entry.Value!, OverrideJson.Options)!)];
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
            await database.HashSetAsync(_hash, key, JsonSerializer.Serialize(value, OverrideJson.Options)).WaitAsync(cancellationToken);
        }

        await connection.GetSubscriber().PublishAsync(_channel, key).WaitAsync(cancellationToken);
    }

    public async Task<bool> RemoveIfAsync(string key, TenantOverride expected, CancellationToken cancellationToken)
    {
        // Compared as stored: the JSON this replica would have written for the same override.
        // Rare (a grant's end), so sent as a plain EVAL by text, like reopen.lua.
        var removed = (long)await connection.GetDatabase().ScriptEvaluateAsync(
            RemoveIf.Source, [_hash], [key, JsonSerializer.Serialize(expected, OverrideJson.Options)]).WaitAsync(cancellationToken) == 1;
        if (removed)
        {
            await connection.GetSubscriber().PublishAsync(_channel, key).WaitAsync(cancellationToken);
        }

        return removed;
    }

    private static readonly EmbeddedScript RemoveIf = new("override-remove-if.lua");

    public Task SubscribeAsync(Action changed) => connection.GetSubscriber().SubscribeAsync(_channel, (_, _) => changed());

    public Task AnnounceResetAsync(string pool, CancellationToken cancellationToken) =>
        connection.GetSubscriber().PublishAsync(_resets, pool).WaitAsync(cancellationToken);

    public Task SubscribeResetsAsync(Action<string> reset) =>
        connection.GetSubscriber().SubscribeAsync(_resets, (_, pool) => reset(pool!));
}
