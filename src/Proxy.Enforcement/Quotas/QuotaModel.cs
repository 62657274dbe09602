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
    private PoolDefinition(string name, QuotaWindow window, TimeZoneInfo timeZone, QuotaNode root, FrozenDictionary<string, QuotaNode> nodes)
    {
        Name = name;
        Window = window;
        TimeZone = timeZone;
        Root = root;
        Nodes = nodes;
    }

    public string Name { get; }

    public long Limit => Root.Limit;

    public QuotaWindow Window { get; }

    public TimeZoneInfo TimeZone { get; }

    /// <summary>The pool itself, as the root of its tenant tree.</summary>
    public QuotaNode Root { get; }

    /// <summary>Every tenant node by its path (<c>prod</c>, <c>acme/search/alice</c>).</summary>
    public FrozenDictionary<string, QuotaNode> Nodes { get; }

    internal static PoolDefinition Create(string name, PoolOptions options)
    {
        if (!QuotaWindow.TryParse(options.Window, out var window))
        {
            throw new ArgumentException($"Pool '{name}' has an invalid window '{options.Window}'.", nameof(options));
        }

        var root = QuotaNode.CreateRoot(options);
        var nodes = new Dictionary<string, QuotaNode>(StringComparer.Ordinal);
        Collect(root, nodes);
        return new PoolDefinition(name, window, TimeZoneInfo.FindSystemTimeZoneById(options.TimeZone), root, nodes.ToFrozenDictionary(StringComparer.Ordinal));
    }

    private static void Collect(QuotaNode node, Dictionary<string, QuotaNode> nodes)
    {
        foreach (var child in node.Children)
        {
            nodes.Add(child.Path, child);
            Collect(child, nodes);
        }
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

