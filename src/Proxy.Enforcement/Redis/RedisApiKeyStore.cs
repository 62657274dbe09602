using System.Text.Json;
using QuotaProxy.Enforcement.Configuration;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// Runtime API keys in one Redis hash (<c>{prefix}admin:api-keys</c>, a JSON value per key id, the key's
/// digest and never the key), shared by every replica; each change is announced on
/// <c>{prefix}admin:api-keys-changed</c>. Last uses go to <c>{prefix}admin:api-keys:last-used</c>, each
/// replica raising a key's time, never lowering it.
/// </summary>
internal sealed class RedisApiKeyStore(IConnectionMultiplexer connection, string keyPrefix) : IApiKeyStore
{
    private readonly RedisKey _hash = $"{keyPrefix}admin:api-keys";
    private readonly RedisKey _lastUsed = $"{keyPrefix}admin:api-keys:last-used";
    private readonly RedisChannel _channel = RedisChannel.Literal($"{keyPrefix}admin:api-keys-changed");

    /// <summary>Raises each field to the value given when it is later (KEYS[1]; ARGV: field, value pairs).</summary>
    private const string RaiseScript = """
        for i = 1, #ARGV, 2 do
          if (tonumber(redis.call('HGET', KEYS[1], ARGV[i])) or 0) < tonumber(ARGV[i + 1]) then
            redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
          end
        end
        return 0
        """;

    public async Task<IReadOnlyList<RuntimeApiKey>> LoadAsync(CancellationToken cancellationToken)
    {
        var entries = await connection.GetDatabase().HashGetAllAsync(_hash).WaitAsync(cancellationToken);
        return [.. entries.Select(entry => JsonSerializer.Deserialize<RuntimeApiKey>((string)entry.Value!, OverrideJson.Options)!)];
    }

    public async Task AddAsync(RuntimeApiKey key, CancellationToken cancellationToken)
    {
        await connection.GetDatabase().HashSetAsync(_hash, key.Id, JsonSerializer.Serialize(key, OverrideJson.Options)).WaitAsync(cancellationToken);
        await connection.GetSubscriber().PublishAsync(_channel, key.Id).WaitAsync(cancellationToken);
    }

    public async Task<bool> RevokeAsync(string id, CancellationToken cancellationToken)
    {
        var removed = await connection.GetDatabase().HashDeleteAsync(_hash, id).WaitAsync(cancellationToken);
        await connection.GetSubscriber().PublishAsync(_channel, id).WaitAsync(cancellationToken);
        return removed;
    }

    public async Task<IReadOnlyDictionary<string, long>> LastUsedAsync(CancellationToken cancellationToken) =>
        (await connection.GetDatabase().HashGetAllAsync(_lastUsed).WaitAsync(cancellationToken)).ToDictionary(e => (string)e.Name!, e => (long)e.Value, StringComparer.Ordinal);

    public async Task RecordUseAsync(IReadOnlyDictionary<string, long> lastUsed, CancellationToken cancellationToken)
    {
        if (lastUsed.Count > 0)
        {
            await connection.GetDatabase().ScriptEvaluateAsync(RaiseScript, [_lastUsed], [.. lastUsed.SelectMany(e => new RedisValue[] { e.Key, e.Value })]).WaitAsync(cancellationToken);
        }
    }

    public Task SubscribeAsync(Action changed) => connection.GetSubscriber().SubscribeAsync(_channel, (_, _) => changed());
}
