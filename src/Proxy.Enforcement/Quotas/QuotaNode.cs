namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// One node of a pool's tenant tree, with its defaults resolved and the configuration sums its parent's
/// running aggregates are measured against (see <see cref="TreeAdmission"/>). The pool itself is the root.
/// </summary>
internal sealed class QuotaNode
{
    /// <summary>The root's usage field, and its key in aggregate field names.</summary>
    public const string RootField = "pool";

    /// <summary>Priority of a tenant that sets none: below every configured priority.</summary>
    public const int LowestPriority = int.MaxValue;

    private QuotaNode(string name, string path, QuotaNode? parent, long limit, long allocation, long guaranteed, int priority, long? softLimit, long overage, QuotaMode mode, QuotaRate? rate, long? maxInFlight)
    {
        Name = name;
        Path = path;
        Parent = parent;
        Depth = parent is null ? 0 : parent.Depth + 1;
        Limit = limit;
        Allocation = allocation;
        Guaranteed = guaranteed;
        Priority = priority;
        SoftLimit = softLimit;
        Overage = overage;
        Mode = mode;
        Rate = rate;
        MaxInFlight = maxInFlight;
        LeasesOnPath = maxInFlight is not null || parent?.LeasesOnPath == true;
        UsageField = parent is null ? RootField : "t:" + path;
        GuaranteeAggregateField = "g:" + UsageField;
        RateField = "r:" + UsageField;
        EffectiveLimit = parent is null ? limit : Math.Min(limit, parent.EffectiveLimit);
    }

    public string Name { get; }

    /// <summary><c>acme/search/alice</c>; empty for the root.</summary>
    public string Path { get; }

    public QuotaNode? Parent { get; }

    public int Depth { get; }

    public bool IsRoot => Parent is null;

    public long Limit { get; }

    public long Allocation { get; }

    public long Guaranteed { get; }

    public int Priority { get; }

    public long? SoftLimit { get; }

    public long Overage { get; }

    /// <summary>The mode in force here: its own, else inherited.</summary>
    public QuotaMode Mode { get; }

    /// <summary>Requests in flight at once through this node, or null for no limit.</summary>
    public long? MaxInFlight { get; }

    /// <summary>This node or one above it has a <see cref="MaxInFlight"/>: its requests take a lease.</summary>
    public bool LeasesOnPath { get; }

    /// <summary>A GCRA rate on this node, or null.</summary>
    public QuotaRate? Rate { get; }

    /// <summary>
    /// Field of this node's GCRA theoretical arrival time (Unix µs) in the pool's state hash, which, unlike
    /// the usage hash, outlives the window.
    /// </summary>
    public string RateField { get; }

    /// <summary>
    /// A store's precomputed data for decisions on this node (the Redis store keeps its script arguments
    /// here), so that it lives and dies with the model that holds the node.
    /// </summary>
    internal object? StoreCache { get; set; }

    /// <summary>The response headers' precomputed values for requests of this node (RateLimit-Policy), kept like <see cref="StoreCache"/>.</summary>
    internal object? HeaderCache { get; set; }

    /// <summary>The smallest Limit from here up to the pool: what headers call this tenant's limit.</summary>
    public long EffectiveLimit { get; }

    public IReadOnlyList<QuotaNode> Children { get; private set; } = [];

    /// <summary>Store field holding this node's usage in the window: <c>pool</c> or <c>t:&lt;path&gt;</c>.</summary>
    public string UsageField { get; }

    /// <summary>Σ Guaranteed over the children (the configuration side of the parent's guarantee aggregate).</summary>
    public long ChildGuaranteedSum { get; private set; }

    /// <summary>
    /// For each priority level among the children, Σ (Allocation − Guaranteed) over the children at that
    /// level, highest priority first.
    /// </summary>
    public IReadOnlyList<PriorityLevel> ChildLevels { get; private set; } = [];

    /// <summary>The levels of this node's parent strictly above this node's priority.</summary>
    public IReadOnlyList<PriorityLevel> HigherLevels { get; private set; } = [];

    /// <summary>Parent's aggregate of used guarantees: Σ min(u(s), Guaranteed(s)) over the children.</summary>
    public string GuaranteeAggregateField { get; }

    /// <summary>
    /// The parent's level aggregate this node counts in, <c>d:&lt;parent&gt;:&lt;priority&gt;</c>; null when no
    /// sibling has a lower priority (nothing would ever read it) and for the root.
    /// </summary>
    public string? LevelField { get; private set; }

    /// <summary>Parent's aggregate at one level: Σ (min(u, Allocation) − min(u, Guaranteed)) over the children there.</summary>
    public string LevelAggregateField(int priority) => $"d:{UsageField}:{priority}";

    /// <summary>From the pool (the root) down to this node.</summary>
    public QuotaNode[] PathFromRoot()
    {
        var path = new QuotaNode[Depth + 1];
        for (var node = this; node is not null; node = node.Parent)
        {
            path[node.Depth] = node;
        }

        return path;
    }

    /// <summary>From this node up to (not including) the root.</summary>
    public IEnumerable<QuotaNode> PathToRoot()
    {
        for (var node = this; !node.IsRoot; node = node.Parent!)
        {
            yield return node;
        }
    }

    internal static QuotaNode CreateRoot(NodeSettings pool)
    {
        var limit = pool.Limit ?? throw new ArgumentException("A pool's root needs a Limit.", nameof(pool));
        var root = new QuotaNode("", "", null, limit, limit, limit, 1, pool.SoftLimit, 0, pool.Mode ?? QuotaMode.Enforce, pool.Rate, pool.MaxInFlight);
        root.AddChildren(pool.Tenants);
        return root;
    }

    private void AddChildren(IReadOnlyDictionary<string, NodeSettings> tenants)
    {
        var children = new List<QuotaNode>();
        foreach (var (name, settings) in tenants.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            var allocation = settings.Allocation ?? 0;
            var child = new QuotaNode(
                name,
                IsRoot ? name : $"{Path}/{name}",
                this,
                settings.Limit ?? Limit,
                allocation,
                settings.Guaranteed ?? allocation,
                settings.Priority ?? LowestPriority,
                settings.SoftLimit,
                settings.Overage ?? 0,
                settings.Mode ?? Mode,
                settings.Rate,
                settings.MaxInFlight);
            child.AddChildren(settings.Tenants);
            children.Add(child);
        }

        Children = children;
        ChildGuaranteedSum = children.Sum(c => c.Guaranteed);
        ChildLevels = [.. children
            .GroupBy(c => c.Priority)
            .OrderBy(g => g.Key)
            .Select(g => new PriorityLevel(g.Key, g.Sum(c => c.Allocation - c.Guaranteed), LevelAggregateField(g.Key)))];
        var lowestPriority = children.Count == 0 ? 0 : children.Max(c => c.Priority);
        foreach (var child in children)
        {
            child.HigherLevels = [.. ChildLevels.Where(l => l.Priority < child.Priority)];
            child.LevelField = child.Priority < lowestPriority ? LevelAggregateField(child.Priority) : null;
        }
    }
}
