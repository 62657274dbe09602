using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using QuotaProxy.Enforcement.Admin;
using QuotaProxy.Enforcement.Observability;

namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// The <c>ReverseProxy</c> section YARP reads: the live configuration's as of its last valid state. YARP
/// watches the live files itself; reading through this gate instead, it sees a route only once the whole
/// configuration (routes with their pools, costs and keys) has passed validation.
/// </summary>
internal sealed class GatedProxyConfiguration
{
    private readonly GatedProvider _provider = new();

    public GatedProxyConfiguration(IConfiguration live)
    {
        Root = new ConfigurationRoot([_provider]);
        Publish(Flatten(live));
    }

    public IConfigurationRoot Root { get; }

    public IConfigurationSection ReverseProxy => Root.GetSection("ReverseProxy");

    public IConfigurationSection Routes => Root.GetSection(QuotaOptionsValidator.RoutesSection);

    /// <summary>Takes these <c>ReverseProxy</c> keys (<see cref="Flatten"/>); YARP reloads its routes and clusters from them.</summary>
    public void Publish(Dictionary<string, string?> data) => _provider.Replace(data);

    /// <summary>The live section's keys and values, to tell whether an edit touched it.</summary>
    public static Dictionary<string, string?> Flatten(IConfiguration live) =>
        live.GetSection("ReverseProxy").AsEnumerable().Where(pair => pair.Value is not null).ToDictionary(StringComparer.OrdinalIgnoreCase);

    public bool Holds(Dictionary<string, string?> data) => _provider.Holds(data);

    private sealed class GatedProvider : ConfigurationProvider
    {
        public void Replace(Dictionary<string, string?> data)
        {
            Data = data;
            OnReload();
        }

        public bool Holds(Dictionary<string, string?> data) =>
            data.Count == Data.Count && data.All(pair => Data.TryGetValue(pair.Key, out var value) && value == pair.Value);
    }
}

/// <summary>
/// Hot reload: when the configuration files change, the new <c>Quota</c> and <c>ReverseProxy</c> sections
/// are validated by the startup rules. Valid: routes, costs, pools, tenants and keys are in force within a
/// second (the runtime overrides still applied on top). Invalid: every error is logged, the reload counts
/// as rejected, and the last good configuration stays in force. Store, Ledger, Admin, Metrics and Upstreams
/// are read once at start; an edit to them waits for the next restart, and the log says so.
/// </summary>
internal sealed class ConfigReloader(
    IConfiguration live, GatedProxyConfiguration gated, QuotaModelSource models, QuotaMetrics metrics, ILogger<ConfigReloader> logger)
    : IHostedService, IDisposable
{
    /// <summary>Editors write a file in several steps; the reload waits for them to settle.</summary>
    private static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(300);

    private IDisposable? _watch;
    private int _edits;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _watch = ChangeToken.OnChange(live.GetReloadToken, () => _ = ReloadAfterSettlingAsync(Interlocked.Increment(ref _edits)));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _watch?.Dispose();
        return Task.CompletedTask;
    }

    public void Dispose() => _watch?.Dispose();

    private async Task ReloadAfterSettlingAsync(int edit)
    {
        await Task.Delay(Settle);
        if (edit == Volatile.Read(ref _edits))
        {
            await ReloadAsync();
        }
    }

    internal async Task ReloadAsync()
    {
        var running = models.Config.Configured;
        if (QuotaOptionsValidator.Validate(live, Environment.GetEnvironmentVariable, out var bound) is { Count: > 0 } invalid)
        {
            Refuse(invalid);
            return;
        }

        var candidate = bound!;

        var restartOnly = new List<string>();
        Keep("Store", running.Store, candidate.Store);
        Keep("Ledger", running.Ledger, candidate.Ledger);
        Keep("Admin", running.Admin, candidate.Admin);
        Keep("Metrics", running.Metrics, candidate.Metrics);
        Keep("Upstreams", running.Upstreams, candidate.Upstreams);
        candidate = candidate with { Store = running.Store, Ledger = running.Ledger, Admin = running.Admin, Metrics = running.Metrics, Upstreams = running.Upstreams };

        var routes = GatedProxyConfiguration.Flatten(live);
        if (Json(candidate) == Json(running) && gated.Holds(routes))
        {
            return; // a touch, or an edit elsewhere in the file: nothing of ours changed
        }

        var errors = models.ValidateReconfigure(candidate, live.GetSection(QuotaOptionsValidator.RoutesSection));
        if (errors.Count > 0)
        {
            Refuse(errors);
            return;
        }

        // The pools first, then the routes that use them: a new route never meets a model without its pool.
        var routesInForce = new ConfigurationBuilder().AddInMemoryCollection(routes).Build().GetSection(QuotaOptionsValidator.RoutesSection);
        errors = await models.ReconfigureAsync(candidate, routesInForce, CancellationToken.None);
        if (errors.Count > 0)
        {
            // An admin override landed in between and no longer fits the edit.
            Refuse(errors);
            return;
        }

        gated.Publish(routes);

        metrics.ConfigReloaded(applied: true);
        QuotaLog.ConfigReloaded(logger, candidate.Pools.Count, routes.Keys.Count(key => key.EndsWith(":ClusterId", StringComparison.OrdinalIgnoreCase)));
        if (restartOnly.Count > 0)
        {
            QuotaLog.ConfigNeedsRestart(logger, string.Join(", ", restartOnly));
        }

        void Keep<T>(string section, T before, T after)
        {
            if (Json(before) != Json(after))
            {
                restartOnly.Add($"Quota:{section}");
            }
        }
    }

    private void Refuse(IReadOnlyList<string> errors)
    {
        metrics.ConfigReloaded(applied: false);
        QuotaLog.ConfigReloadRefused(logger, errors.Count, string.Join(Environment.NewLine, errors.Select(error => "  - " + error)));
    }

    private static string Json<T>(T value) => JsonSerializer.Serialize(value);
}
