using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Identity;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Pricing;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Admin;

/// <summary>
/// The configuration every decision uses, as one snapshot: the configured pools with the runtime overrides
/// applied, and the identity settings. A change (an admin override, or an edited appsettings file) is
/// validated by the same rules as the config at start and then swapped in whole, so a request sees the
/// old snapshot or the new one, never half of each.
/// </summary>
public sealed class QuotaModelSource
{
    private readonly IOverrideStore _store;
    private readonly ILogger<QuotaModelSource> _logger;
    /// <summary>One change at a time: each is built on the snapshot the previous one left.</summary>
    private readonly SemaphoreSlim _changes = new(1, 1);
    private volatile Snapshot _current;

    /// <param name="routes">The routes in force (<c>ReverseProxy:Routes</c>), for validation and hash tags.</param>
    public QuotaModelSource(QuotaOptions configured, IConfigurationSection routes, IOverrideStore store, ILogger<QuotaModelSource> logger)
    {
        _store = store;
        _logger = logger;
        _current = new Snapshot(configured, routes, configured, Build(configured, routes), new CallerIdentifier(configured.Identity), new Dictionary<string, TenantOverride>(StringComparer.Ordinal));
    }

    public QuotaModel Current => _current.Model;

    /// <summary>The whole snapshot in force: read it once per request so that everything comes from the same one.</summary>
    internal Snapshot Config => _current;

    /// <summary>The effective options: the config with the overrides applied.</summary>
    public QuotaOptions Options => _current.Options;

    public IReadOnlyDictionary<string, TenantOverride> Overrides => _current.Overrides;

    /// <summary>
    /// What the rules say of the overrides in force with <paramref name="change"/> (null removes
    /// <paramref name="key"/>'s): empty when it fits, and then <paramref name="preview"/> is the model
    /// <see cref="ChangeAsync"/> would put in force.
    /// </summary>
    public IReadOnlyList<string> Validate(string key, TenantOverride? change, out QuotaModel? preview)
    {
        var current = _current;
        var (snapshot, errors) = TryBuild(current.Configured, current.Routes, With(current, key, change));
        preview = snapshot?.Model;
        return errors;
    }

    /// <summary>Validates the overrides with <paramref name="change"/> (null removes <paramref name="key"/>'s); stores and applies them when valid.</summary>
    /// <returns>The validation errors; empty when the change is in force.</returns>
    public async Task<IReadOnlyList<string>> ChangeAsync(string key, TenantOverride? change, CancellationToken cancellationToken)
    {
        await _changes.WaitAsync(cancellationToken);
        try
        {
            var current = _current;
            var (snapshot, errors) = TryBuild(current.Configured, current.Routes, With(current, key, change));
            if (snapshot is null)
            {
                return errors;
            }

            await _store.SaveAsync(key, change, cancellationToken);
            _current = snapshot;
            return [];
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>What the rules say of <paramref name="configured"/> with <paramref name="routes"/> and the overrides in force: empty when it fits.</summary>
    public IReadOnlyList<string> ValidateReconfigure(QuotaOptions configured, IConfigurationSection routes) =>
        TryBuild(configured, routes, new Dictionary<string, TenantOverride>(_current.Overrides, StringComparer.Ordinal)).Errors;

    /// <summary>A new configuration (an edited appsettings file), with the overrides in force applied to it.</summary>
    /// <returns>The validation errors; empty when it is in force.</returns>
    public async Task<IReadOnlyList<string>> ReconfigureAsync(QuotaOptions configured, IConfigurationSection routes, CancellationToken cancellationToken)
    {
        await _changes.WaitAsync(cancellationToken);
        try
        {
            var (snapshot, errors) = TryBuild(configured, routes, new Dictionary<string, TenantOverride>(_current.Overrides, StringComparer.Ordinal));
            if (snapshot is not null)
            {
                _current = snapshot;
            }

            return errors;
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>Reloads the overrides from the store (at start, and when another replica changed them).</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var loaded = await _store.LoadAsync(cancellationToken);
        var overrides = loaded.ToDictionary(o => o.Key, StringComparer.Ordinal);
        await _changes.WaitAsync(cancellationToken);
        try
        {
            var current = _current;
            if (Same(overrides, current.Overrides))
            {
                return;
            }

            var (snapshot, errors) = TryBuild(current.Configured, current.Routes, overrides);
            if (snapshot is null)
            {
                QuotaLog.OverridesRefused(_logger, string.Join(" ", errors));
                return;
            }

            _current = snapshot;
            QuotaLog.OverridesApplied(_logger, overrides.Count);
        }
        finally
        {
            _changes.Release();
        }
    }

    private static Dictionary<string, TenantOverride> With(Snapshot current, string key, TenantOverride? change)
    {
        var overrides = new Dictionary<string, TenantOverride>(current.Overrides, StringComparer.Ordinal);
        if (change is null)
        {
            overrides.Remove(key);
        }
        else
        {
            overrides[key] = change;
        }

        return overrides;
    }

    private static (Snapshot? Snapshot, IReadOnlyList<string> Errors) TryBuild(QuotaOptions configured, IConfigurationSection routes, Dictionary<string, TenantOverride> overrides)
    {
        var stale = new List<string>();
        var effective = TenantOverride.Apply(configured, overrides.Values, stale);
        var errors = QuotaOptionsValidator.Validate(effective, routes, Environment.GetEnvironmentVariable);
        return errors.Count > 0
            ? (null, errors)
            : (new Snapshot(configured, routes, effective, Build(effective, routes), new CallerIdentifier(effective.Identity), overrides), []);
    }

    private static QuotaModel Build(QuotaOptions options, IConfigurationSection routes) => QuotaModel.Create(options, RouteQuota.PoolsOfRoutes(routes));

    private static bool Same(Dictionary<string, TenantOverride> a, IReadOnlyDictionary<string, TenantOverride> b) =>
        a.Count == b.Count && a.All(pair => b.TryGetValue(pair.Key, out var other) && other == pair.Value);

    /// <param name="Configured">The options as configured (the file), before overrides.</param>
    /// <param name="Routes">The routes these were validated with.</param>
    /// <param name="Options">The effective options: overrides applied.</param>
    internal sealed record Snapshot(
        QuotaOptions Configured,
        IConfigurationSection Routes,
        QuotaOptions Options,
        QuotaModel Model,
        CallerIdentifier Identifier,
        IReadOnlyDictionary<string, TenantOverride> Overrides);
}

/// <summary>Loads the overrides before the proxy serves, then follows every replica's changes (announced, and re-read every 10 s in case an announcement was missed).</summary>
internal sealed class OverrideSync(QuotaModelSource source, IOverrideStore store, ILogger<OverrideSync> logger) : BackgroundService
{
    private static readonly TimeSpan Poll = TimeSpan.FromSeconds(10);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await source.RefreshAsync(cancellationToken);
            await store.SubscribeAsync(() => _ = RefreshQuietlyAsync());
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            // Redis is away at start: the configured values stand until the next poll reaches it.
            QuotaLog.OverridesUnavailable(logger, ex.GetType().Name, ex.Message);
        }

        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Poll, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            await RefreshQuietlyAsync();
        }
    }

    private async Task RefreshQuietlyAsync()
    {
        try
        {
            await source.RefreshAsync(CancellationToken.None);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException or System.Text.Json.JsonException)
        {
            QuotaLog.OverridesUnavailable(logger, ex.GetType().Name, ex.Message);
        }
    }
}
