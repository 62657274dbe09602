using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Security.Cryptography;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Observability;

namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// The API keys issued at runtime, as this replica knows them: loaded before the proxy serves, reloaded at
/// once when any replica announces a change, and every second in case an announcement was missed, so a new
/// or revoked key is honoured everywhere within a second. Requests look keys up here by digest; their uses
/// are kept in memory and written to the store every few seconds (last used, per key).
/// </summary>
internal sealed class RuntimeApiKeys(IApiKeyStore store, TimeProvider timeProvider, ILogger<RuntimeApiKeys> logger) : BackgroundService
{
    /// <summary>Every key starts with this, so that a leaked one is recognisable (secret scanners, logs).</summary>
    public const string Prefix = "qp_";

    private static readonly TimeSpan Poll = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan UseFlush = TimeSpan.FromSeconds(5);

    private volatile FrozenDictionary<string, RuntimeApiKey> _byDigest = FrozenDictionary<string, RuntimeApiKey>.Empty;
    private readonly ConcurrentDictionary<string, long> _usedSinceFlush = new(StringComparer.Ordinal);

    /// <summary>A new key: <see cref="Prefix"/> and 256 random bits, base64url.</summary>
    public static string NewKey() => Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>A key's id in the admin API: not derived from the key.</summary>
    public static string NewId() => "key_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    /// <summary>The tenant of the live runtime key with this digest, or null; the use is remembered.</summary>
    public string? TenantOf(string digest)
    {
        if (!_byDigest.TryGetValue(digest, out var key))
        {
            return null;
        }

        var now = timeProvider.GetUtcNow();
        if (!key.IsLiveAt(now))
        {
            return null;
        }

        _usedSinceFlush[key.Id] = now.ToUnixTimeMilliseconds();
        return key.Tenant;
    }

    /// <summary>Reads the keys again now (after this replica changed them, so that its own change is in force on return).</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var keys = await store.LoadAsync(cancellationToken);
        _byDigest = keys.ToFrozenDictionary(key => key.Digest, StringComparer.Ordinal);
    }

    /// <summary>This replica's uses not yet written, then what every replica wrote.</summary>
    public async Task<IReadOnlyDictionary<string, long>> LastUsedAsync(CancellationToken cancellationToken)
    {
        await FlushUsesAsync(cancellationToken);
        return await store.LastUsedAsync(cancellationToken);
    }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await RefreshAsync(cancellationToken);
            await store.SubscribeAsync(() => _ = RefreshQuietlyAsync());
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The store is away at start: the configured keys work; runtime ones from the next poll that reaches it.
            QuotaLog.RuntimeKeysUnavailable(logger, ex);
        }

        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var lastFlush = timeProvider.GetTimestamp();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Poll, timeProvider, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            await RefreshQuietlyAsync();
            if (timeProvider.GetElapsedTime(lastFlush) >= UseFlush)
            {
                lastFlush = timeProvider.GetTimestamp();
                await FlushQuietlyAsync();
            }
        }

        await FlushQuietlyAsync();
    }

    private async Task RefreshQuietlyAsync()
    {
        try
        {
            await RefreshAsync(CancellationToken.None);
        }
        catch (Exception ex)
        {
            // A background refresh survives anything: the keys known stay in force, the next poll tries again.
            QuotaLog.RuntimeKeysUnavailable(logger, ex);
        }
    }

    private async Task FlushQuietlyAsync()
    {
        try
        {
            await FlushUsesAsync(CancellationToken.None);
        }
        catch (Exception ex)
        {
            QuotaLog.RuntimeKeysUnavailable(logger, ex);
        }
    }

    private async Task FlushUsesAsync(CancellationToken cancellationToken)
    {
        var uses = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var id in _usedSinceFlush.Keys)
        {
            if (_usedSinceFlush.TryRemove(id, out var at))
            {
                uses[id] = at;
            }
        }

        await store.RecordUseAsync(uses, cancellationToken);
    }
}
