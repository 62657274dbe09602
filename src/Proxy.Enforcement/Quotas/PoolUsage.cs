namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// A pool's counters for one window: every node's credits used and the running aggregates the admission
/// rule reads (0 for a window no decision has opened), and until when a vendor 429 closed it (0: open).
/// </summary>
internal sealed record PoolUsage(WindowBounds Window, IReadOnlyDictionary<string, long> Counters, long ClosedUntilMs)
{
    /// <summary>Credits <paramref name="node"/> (with everything below it) has used this window.</summary>
    public long Used(QuotaNode node) => Counters.GetValueOrDefault(node.UsageField);

    /// <summary>The largest cost <paramref name="node"/> could be admitted for now by credits (rates, leases and closures aside).</summary>
    public long Available(QuotaNode node) => TreeAdmission.Remaining(node, new Dictionary<string, long>(Counters, StringComparer.Ordinal));

    /// <summary>Every counter field of the pool, as both stores lay them out: usage, guarantee and level aggregates.</summary>
    internal static IReadOnlyList<string> CounterFields(PoolDefinition pool) =>
        [.. pool.Nodes.Values.Prepend(pool.Root)
            .SelectMany(node => node.ChildLevels.Select(level => level.Field).Prepend(node.GuaranteeAggregateField).Prepend(node.UsageField))
            .Distinct(StringComparer.Ordinal)];
}
