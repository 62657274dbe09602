using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Pricing;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Admin;

/// <summary>
/// The model every decision uses: the configured pools with the runtime overrides applied. A change is
/// validated by the same rules as the config at start (a tenant's Limit above its parent's is refused
/// just the same) and then swapped in whole, so a request sees the old model or the new one, never half.
/// </summary>
public sealed class QuotaModelSource
{
    private readonly QuotaOptions _configured;
    private readonly IConfiguration _configuration;
    private readonly IOverrideStore _store;
    private readonly ILogger<QuotaModelSource> _logger;
    private volatile Snapshot _current;

    public QuotaModelSource(QuotaOptions configured, IConfiguration configuration, IOverrideStore store, ILogger<QuotaModelSource> logger)
    {
        _configured = configured;
        _configuration = configuration;
        _store = store;
        _logger = logger;
        _current = new Snapshot(configured, Build(configured), new Dictionary<string, TenantOverride>(StringComparer.Ordinal));
    }

    public QuotaModel Current => _current.Model;

    /// <summary>The effective options: the config with the overrides applied.</summary>
    public QuotaOptions Options => _current.Options;

    public IReadOnlyDictionary<string, TenantOverride> Overrides => _current.Overrides;

    /// <summary>What the rules say of the overrides in force with <paramref name="change"/> (null removes <paramref name="key"/>'s): empty when it fits.</summary>
    public IReadOnlyList<string> Validate(string key, TenantOverride? change) => TryBuild(With(key, change)).Errors;

    /// <summary>The model <see cref="ChangeAsync"/> would put in force; the change must have passed <see cref="Validate"/>.</summary>
    public QuotaModel Preview(string key, TenantOverride? change) => TryBuild(With(key, change)).Snapshot!.Model;

    /// <summary>Validates the overrides with <paramref name="change"/> (null removes <paramref name="key"/>'s); stores and applies them when valid.</summary>
    /// <returns>The validation errors; empty when the change is in force.</returns>
    public async Task<IReadOnlyList<string>> ChangeAsync(string key, TenantOverride? change, CancellationToken cancellationToken)
    {
        var (snapshot, errors) = TryBuild(With(key, change));
        if (snapshot is null)
        {
            return errors;
        }

        await _store.SaveAsync(key, change, cancellationToken);
        _current = snapshot;
        return [];
    }

    /// <summary>Reloads the overrides from the store (at start, and when another replica changed them).</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var loaded = await _store.LoadAsync(cancellationToken);
        var overrides = loaded.ToDictionary(o => o.Key, StringComparer.Ordinal);
        if (Same(overrides, _current.Overrides))
        {
            return;
        }

        var (snapshot, errors) = TryBuild(overrides);
        if (snapshot is null)
        {
            QuotaLog.OverridesRefused(_logger, string.Join(" ", errors));
            return;
        }

        _current = snapshot;
        QuotaLog.OverridesApplied(_logger, overrides.Count);
    }

    private Dictionary<string, TenantOverride> With(string key, TenantOverride? change)
    {
        var overrides = new Dictionary<string, TenantOverride>(_current.Overrides, StringComparer.Ordinal);
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

    private (Snapshot? Snapshot, IReadOnlyList<string> Errors) TryBuild(Dictionary<string, TenantOverride> overrides)
    {
        var stale = new List<string>();
        var effective = TenantOverride.Apply(_configured, overrides.Values, stale);
        var errors = QuotaOptionsValidator.Validate(effective, _configuration.GetSection(QuotaOptionsValidator.RoutesSection), Environment.GetEnvironmentVariable);
        return errors.Count > 0 ? (null, errors) : (new Snapshot(effective, Build(effective), overrides), []);
    }

    private QuotaModel Build(QuotaOptions options) =>
        QuotaModel.Create(options, RouteQuota.PoolsOfRoutes(_configuration.GetSection(QuotaOptionsValidator.RoutesSection)));

    private static bool Same(Dictionary<string, TenantOverride> a, IReadOnlyDictionary<string, TenantOverride> b) =>
        a.Count == b.Count && a.All(pair => b.TryGetValue(pair.Key, out var other) && other == pair.Value);

    private sealed record Snapshot(QuotaOptions Options, QuotaModel Model, IReadOnlyDictionary<string, TenantOverride> Overrides);
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
