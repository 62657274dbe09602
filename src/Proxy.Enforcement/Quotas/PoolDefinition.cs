using System.Collections.Frozen;

namespace QuotaProxy.Enforcement.Quotas;

internal sealed class PoolDefinition
{
    private PoolDefinition(string name, string hashTag, QuotaWindow window, TimeZoneInfo timeZone, QuotaNode root, FrozenDictionary<string, QuotaNode> nodes, long emergencyAllowance, TimeSpan maxClosure, LeaseSettings? lease)
    {
        Lease = lease;
        MaxClosure = maxClosure;
        EmergencyAllowance = emergencyAllowance;
        Name = name;
        HashTag = hashTag;
        Window = window;
        TimeZone = timeZone;
        Root = root;
        Nodes = nodes;
    }

    public string Name { get; }

    public long Limit => Root.Limit;

    /// <summary>Credits one replica may admit for this pool per window while the store is unreachable (outage policy AllowBounded).</summary>
    public long EmergencyAllowance { get; }

    /// <summary>
    /// The Redis hash tag of this pool's keys: its own name, or, when routes draw on it together with other
    /// pools, the first name among them, so that a decision over all of them touches one cluster slot.
    /// </summary>
    public string HashTag { get; }

    /// <summary>Credit leases for this pool's tenants, or null: one store decision per request.</summary>
    public LeaseSettings? Lease { get; }

    /// <summary>The longest a vendor 429 closes this pool.</summary>
    public TimeSpan MaxClosure { get; }

    public QuotaWindow Window { get; }

    public TimeZoneInfo TimeZone { get; }

    /// <summary>The pool itself, as the root of its tenant tree.</summary>
    public QuotaNode Root { get; }

    /// <summary>Every tenant node by its path (<c>prod</c>, <c>acme/search/alice</c>).</summary>
    public FrozenDictionary<string, QuotaNode> Nodes { get; }

    internal static PoolDefinition Create(string name, PoolSettings settings, string? hashTag = null)
    {
        var root = QuotaNode.CreateRoot(settings.Root);
        var nodes = new Dictionary<string, QuotaNode>(StringComparer.Ordinal);
        Collect(root, nodes);
        return new PoolDefinition(name, hashTag ?? name, settings.Window, settings.TimeZone, root, nodes.ToFrozenDictionary(StringComparer.Ordinal), settings.EmergencyAllowance, settings.MaxClosure ?? TimeSpan.FromHours(1), settings.Lease);
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
