using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// The configuration in force: the configured file with the runtime overrides applied, as one
/// <see cref="ConfigurationSnapshot"/>. A change (an admin override, an edited file, another replica's
/// override) goes through <see cref="CandidateConfiguration"/> and is then swapped in whole. Nothing else
/// keeps a copy: whoever needs the configuration reads <see cref="Current"/> when it needs it.
/// </summary>
internal sealed class LiveConfiguration(ConfigurationSnapshot initial, IOverrideStore store, ILogger<LiveConfiguration> logger, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>One change at a time: each is built on the snapshot the previous one left.</summary>
    private readonly SemaphoreSlim _changes = new(1, 1);
    private volatile ConfigurationSnapshot _current = initial;

    /// <summary>The whole snapshot in force: read it once per request so that everything comes from the same one.</summary>
    public ConfigurationSnapshot Current => _current;

    public QuotaModel Model => _current.Model;

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
        preview = CandidateConfiguration.WithOverrides(current, With(current, key, change), out var errors)?.Model;
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
            var snapshot = CandidateConfiguration.WithOverrides(current, With(current, key, change), out var errors);
            if (snapshot is null)
            {
                return errors;
            }

            await store.SaveAsync(key, change, cancellationToken);
            _current = snapshot;
            return [];
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>
    /// A new configuration (an edited file): validated once, with the overrides in force applied, and put
    /// in force when valid and different from the one in force. <paramref name="pin"/> adjusts the options
    /// as read (the sections only a restart changes keep their running values).
    /// </summary>
    public async Task<ReloadOutcome> ReconfigureAsync(IConfiguration candidate, Func<QuotaOptions, QuotaOptions> pin, bool routesChanged, CancellationToken cancellationToken)
    {
        await _changes.WaitAsync(cancellationToken);
        try
        {
            var current = _current;
            var snapshot = CandidateConfiguration.Load(candidate, current.Overrides, Environment.GetEnvironmentVariable, out var errors, pin);
            if (snapshot is null)
            {
                return new ReloadOutcome(false, errors);
            }

            if (!routesChanged && Json(snapshot.Configured) == Json(current.Configured))
            {
                return new ReloadOutcome(false, []);
            }

            _current = snapshot;
            return new ReloadOutcome(true, []);
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>Reloads the overrides from the store (at start, and when another replica changed them).</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var loaded = await store.LoadAsync(cancellationToken);
        // A grant that has expired is not applied, whether or not a replica has removed it from the store yet.
        var now = _time.GetUtcNow();
        var overrides = loaded.Where(o => !o.ExpiredAt(now)).ToDictionary(o => o.Key, StringComparer.Ordinal);
        await _changes.WaitAsync(cancellationToken);
        try
        {
            var current = _current;
            if (Same(overrides, current.Overrides))
            {
                return;
            }

            var snapshot = CandidateConfiguration.WithOverrides(current, overrides, out var errors);
            if (snapshot is null)
            {
                QuotaLog.OverridesRefused(logger, string.Join(" ", errors));
                return;
            }

            _current = snapshot;
            QuotaLog.OverridesApplied(logger, overrides.Count);
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>
    /// Takes the overrides that have expired by <paramref name="now"/> out of force on this replica, by itself
    /// (the store need not answer): the configured values, or what the other overrides make of them, stand again.
    /// </summary>
    /// <returns>The overrides taken out.</returns>
    public async Task<IReadOnlyList<TenantOverride>> ExpireAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await _changes.WaitAsync(cancellationToken);
        try
        {
            var current = _current;
            var expired = current.Overrides.Values.Where(o => o.ExpiredAt(now)).ToList();
            if (expired.Count == 0)
            {
                return [];
            }

            var remaining = current.Overrides.Values.Where(o => !o.ExpiredAt(now)).ToDictionary(o => o.Key, StringComparer.Ordinal);
            var snapshot = CandidateConfiguration.WithOverrides(current, remaining, out var errors);
            if (snapshot is null)
            {
                // The overrides left do not fit without the expired one (a guarantee raised elsewhere): the configuration alone does.
                QuotaLog.OverridesRefused(logger, string.Join(" ", errors));
                snapshot = CandidateConfiguration.WithOverrides(current, new Dictionary<string, TenantOverride>(), out _)!;
            }

            _current = snapshot;
            return expired;
        }
        finally
        {
            _changes.Release();
        }
    }

    private static Dictionary<string, TenantOverride> With(ConfigurationSnapshot current, string key, TenantOverride? change)
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

    private static string Json(QuotaOptions options) => System.Text.Json.JsonSerializer.Serialize(options);

    private static bool Same(Dictionary<string, TenantOverride> a, IReadOnlyDictionary<string, TenantOverride> b) =>
        a.Count == b.Count && a.All(pair => b.TryGetValue(pair.Key, out var other) && other == pair.Value);
}
