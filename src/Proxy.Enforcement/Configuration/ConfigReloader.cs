using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using QuotaProxy.Enforcement.Observability;

namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// Hot reload: when the configuration files change, the new <c>Quota</c> and <c>ReverseProxy</c> sections
/// go through <see cref="CandidateConfiguration"/> once. Valid: routes, costs, pools, tenants and keys are
/// in force within a second (the runtime overrides still applied on top). Invalid, or a file that is not
/// valid JSON: every error is logged, the reload counts as rejected, and the last good configuration stays
/// in force. Store, Ledger, the admin URL, Metrics and Upstreams are read once at start; an edit to them waits for
/// the next restart, and the log says so.
/// </summary>
internal sealed class ConfigReloader(
    IConfiguration live, GatedProxyConfiguration gated, LiveConfiguration configuration, QuotaMetrics metrics, ILogger<ConfigReloader> logger)
    : IHostedService, IDisposable
{
    /// <summary>Editors write a file in several steps; the reload waits for them to settle.</summary>
    private static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(300);

    private static readonly JsonDocumentOptions JsonFileSyntax = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    private IDisposable? _watch;
    private int _edits;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var file in Files())
        {
            // A file that no longer parses: the provider empties its data and, left alone, throws on the
            // watcher's thread where nobody sees it. Let it go on; the reload below refuses it by name.
            file.Source.OnLoadException ??= context => context.Ignore = true;
        }

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
        if (edit != Volatile.Read(ref _edits))
        {
            return;
        }

        try
        {
            await ReloadAsync();
        }
        catch (Exception ex)
        {
            // Nobody awaits a reload: whatever went wrong is logged with its stack trace and counted, and the
            // configuration in force stays.
            QuotaLog.ConfigReloadFailed(logger, ex);
            metrics.ConfigReloaded(applied: false);
        }
    }

    internal async Task ReloadAsync()
    {
        if (UnreadableFiles() is { Count: > 0 } unreadable)
        {
            Refuse(unreadable);
            return;
        }

        var running = configuration.Current.Configured;
        var routes = GatedProxyConfiguration.Flatten(live);
        var restartOnly = new List<string>();
        var outcome = await configuration.ReconfigureAsync(live, candidate =>
        {
            Keep("Store", running.Store, candidate.Store);
            Keep("Ledger", running.Ledger, candidate.Ledger);
            Keep("Admin:Url", running.Admin.Url, candidate.Admin.Url);
            Keep("Metrics", running.Metrics, candidate.Metrics);
            Keep("AccessLog", running.AccessLog, candidate.AccessLog);
            Keep("Upstreams", running.Upstreams, candidate.Upstreams);
            // The admin keys and their header reload (a revoked key is refused at once); the admin port does not.
            var admin = running.Admin with { Keys = candidate.Admin.Keys, KeyHeader = candidate.Admin.KeyHeader };
            return candidate with { Store = running.Store, Ledger = running.Ledger, Admin = admin, Metrics = running.Metrics, AccessLog = running.AccessLog, Upstreams = running.Upstreams };
        }, routesChanged: !gated.Holds(routes), CancellationToken.None);

        if (outcome.Errors.Count > 0)
        {
            Refuse(outcome.Errors);
            return;
        }

        if (!outcome.Changed)
        {
            return; // a touch, or an edit elsewhere in the file: nothing of ours changed
        }

        // The pools are in force: now the routes that use them, so a new route never meets a model without its pool.
        gated.Publish(routes);
        QuotaLog.ConfigReloaded(logger, configuration.Options.Pools.Count, routes.Keys.Count(key => key.EndsWith(":ClusterId", StringComparison.OrdinalIgnoreCase)));
        if (restartOnly.Count > 0)
        {
            QuotaLog.ConfigNeedsRestart(logger, string.Join(", ", restartOnly));
        }

        metrics.ConfigReloaded(applied: true);

        void Keep<T>(string section, T before, T after)
        {
            if (Json(before) != Json(after))
            {
                restartOnly.Add($"Quota:{section}");
            }
        }
    }

    private IEnumerable<FileConfigurationProvider> Files() =>
        live is IConfigurationRoot root ? root.Providers.OfType<FileConfigurationProvider>() : [];

    /// <summary>The watched JSON files that do not parse now, each with where and why.</summary>
    private List<string> UnreadableFiles()
    {
        var errors = new List<string>();
        foreach (var file in Files().Where(file => file.Source.Path is not null && file.Source.Path.EndsWith(".json", StringComparison.OrdinalIgnoreCase)))
        {
            var info = file.Source.FileProvider?.GetFileInfo(file.Source.Path!);
            if (info is not { Exists: true })
            {
                continue;
            }

            try
            {
                using var stream = info.CreateReadStream();
                using var document = JsonDocument.Parse(stream, JsonFileSyntax);
            }
            catch (JsonException ex)
            {
                errors.Add($"{info.PhysicalPath ?? file.Source.Path} is not valid JSON: {ex.Message}");
            }
            catch (IOException ex)
            {
                errors.Add($"{info.PhysicalPath ?? file.Source.Path} could not be read: {ex.Message}");
            }
        }

        return errors;
    }

    private void Refuse(IReadOnlyList<string> errors)
    {
        // Logged before it is counted: whoever sees the count can read the log.
        QuotaLog.ConfigReloadRefused(logger, errors.Count, string.Join(Environment.NewLine, errors.Select(error => "  - " + error)));
        metrics.ConfigReloaded(applied: false);
    }

    private static string Json<T>(T value) => JsonSerializer.Serialize(value);
}
