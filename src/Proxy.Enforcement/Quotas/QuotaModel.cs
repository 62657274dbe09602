using System.Collections.Frozen;
using QuotaProxy.Enforcement.Configuration;

namespace QuotaProxy.Enforcement.Quotas;

/// <summary>The validated quota configuration, compiled once into what a decision needs.</summary>
public sealed class QuotaModel
{
    private QuotaModel(FrozenDictionary<string, PoolDefinition> pools) => Pools = pools;

    public FrozenDictionary<string, PoolDefinition> Pools { get; }

    /// <summary>Builds the model from options that <see cref="QuotaOptionsValidator"/> has accepted.</summary>
    public static QuotaModel Create(QuotaOptions options)
    {
        var pools = options.Pools.ToFrozenDictionary(
            pair => pair.Key,
            pair => PoolDefinition.Create(pair.Key, pair.Value),
            StringComparer.Ordinal);
        return new QuotaModel(pools);
    }
}

public sealed class PoolDefinition
{
    private PoolDefinition(string name, long limit, QuotaWindow window, TimeZoneInfo timeZone, FrozenDictionary<string, TenantDefinition> tenants)
    {
        Name = name;
        Limit = limit;
        Window = window;
        TimeZone = timeZone;
        Tenants = tenants;
    }

    public string Name { get; }

    public long Limit { get; }

    public QuotaWindow Window { get; }

    public TimeZoneInfo TimeZone { get; }

    public FrozenDictionary<string, TenantDefinition> Tenants { get; }

    internal static PoolDefinition Create(string name, PoolOptions options)
    {
        if (!QuotaWindow.TryParse(options.Window, out var window))
        {
            throw new ArgumentException($"Pool '{name}' has an invalid window '{options.Window}'.", nameof(options));
        }

        var tenants = options.Tenants.ToFrozenDictionary(
            pair => pair.Key,
            pair => new TenantDefinition(pair.Key, pair.Value.Limit ?? options.Limit),
            StringComparer.Ordinal);
        return new PoolDefinition(name, options.Limit, window, TimeZoneInfo.FindSystemTimeZoneById(options.TimeZone), tenants);
    }

    private CalendarWindows? _calendar;

    public WindowBounds Locate(DateTimeOffset instant) => Window.Locate(instant, TimeZone);

    /// <summary>
    /// The calendar window holding <paramref name="instant"/> and its two neighbours, computed once per window
    /// rather than once per request (time-zone conversions are not free on the hot path).
    /// </summary>
    internal CalendarWindows CalendarAround(DateTimeOffset instant)
    {
        var ms = instant.ToUnixTimeMilliseconds();
        var cached = _calendar;
        if (cached is not null && ms >= cached.Current.StartMs && ms < cached.Current.EndMs)
        {
            return cached;
        }

        var current = Locate(instant);
        var fresh = new CalendarWindows(Locate(current.Start.AddMilliseconds(-1)), current, Locate(current.End));
        _calendar = fresh;
        return fresh;
    }
}

internal sealed record CalendarWindows(WindowBounds Previous, WindowBounds Current, WindowBounds Next);

public sealed record TenantDefinition(string Name, long Limit);
