using System.Collections.Frozen;
using QuotaProxy.Enforcement.Configuration;

namespace QuotaProxy.Enforcement.Quotas;

/// <summary>The validated quota configuration, compiled once into what a decision needs.</summary>
public sealed class QuotaModel
{
    private QuotaModel(FrozenDictionary<string, PoolDefinition> pools) => Pools = pools;

    public FrozenDictionary<string, PoolDefinition> Pools { get; }

    /// <summary>
    /// Builds the model from options that <see cref="QuotaOptionsValidator"/> has accepted.
    /// <paramref name="routePools"/> are the pool lists of the metered routes: pools that one route draws on
    /// together share a hash tag (transitively), so that one decision touches one Redis Cluster slot.
    /// </summary>
    public static QuotaModel Create(QuotaOptions options, IEnumerable<IReadOnlyList<string>>? routePools = null)
    {
        var tags = HashTags(options.Pools.Keys, routePools ?? []);
        var pools = options.Pools.ToFrozenDictionary(
            pair => pair.Key,
            pair => PoolDefinition.Create(pair.Key, pair.Value, tags[pair.Key]),
            StringComparer.Ordinal);
        return new QuotaModel(pools);
    }

    /// <summary>Each pool's tag: the first name (ordinal) among the pools linked to it by routes.</summary>
    private static Dictionary<string, string> HashTags(IEnumerable<string> pools, IEnumerable<IReadOnlyList<string>> routePools)
    {
        var parent = pools.ToDictionary(p => p, p => p, StringComparer.Ordinal);
        string Find(string pool)
        {
            while (parent[pool] != pool)
            {
                pool = parent[pool] = parent[parent[pool]];
            }

            return pool;
        }

        foreach (var route in routePools)
        {
            var known = route.Where(parent.ContainsKey).ToList();
            foreach (var other in known.Skip(1))
            {
                var (a, b) = (Find(known[0]), Find(other));
                if (a != b)
                {
                    // The smaller name becomes the root, so the tag does not depend on the order of routes.
                    (a, b) = string.CompareOrdinal(a, b) < 0 ? (a, b) : (b, a);
                    parent[b] = a;
                }
            }
        }

        return parent.Keys.ToDictionary(p => p, Find, StringComparer.Ordinal);
    }
}

public sealed class PoolDefinition
{
    private PoolDefinition(string name, string hashTag, QuotaWindow window, TimeZoneInfo timeZone, QuotaNode root, FrozenDictionary<string, QuotaNode> nodes)
    {
        Name = name;
        HashTag = hashTag;
        Window = window;
        TimeZone = timeZone;
        Root = root;
        Nodes = nodes;
    }

    public string Name { get; }

    public long Limit => Root.Limit;

    /// <summary>
    /// The Redis hash tag of this pool's keys: its own name, or, when routes draw on it together with other
    /// pools, the first name among them, so that a decision over all of them touches one cluster slot.
    /// </summary>
    public string HashTag { get; }

    public QuotaWindow Window { get; }

    public TimeZoneInfo TimeZone { get; }

    /// <summary>The pool itself, as the root of its tenant tree.</summary>
    public QuotaNode Root { get; }

    /// <summary>Every tenant node by its path (<c>prod</c>, <c>acme/search/alice</c>).</summary>
    public FrozenDictionary<string, QuotaNode> Nodes { get; }

    internal static PoolDefinition Create(string name, PoolOptions options, string? hashTag = null)
    {
        if (!QuotaWindow.TryParse(options.Window, out var window))
        {
            throw new ArgumentException($"Pool '{name}' has an invalid window '{options.Window}'.", nameof(options));
        }

        var root = QuotaNode.CreateRoot(options);
        var nodes = new Dictionary<string, QuotaNode>(StringComparer.Ordinal);
        Collect(root, nodes);
        return new PoolDefinition(name, hashTag ?? name, window, TimeZoneInfo.FindSystemTimeZoneById(options.TimeZone), root, nodes.ToFrozenDictionary(StringComparer.Ordinal));
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

