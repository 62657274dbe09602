namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// The MaxInFlight leases of one pool's nodes: per node (by usage field), lease id → expiry in Unix ms.
/// A lease counts until it is released or expires.
/// </summary>
internal sealed class Leases
{
    private readonly Dictionary<string, Dictionary<string, long>> _byNode = new(StringComparer.Ordinal);

    public Dictionary<string, long> Of(QuotaNode node)
    {
        if (!_byNode.TryGetValue(node.UsageField, out var leases))
        {
            leases = new Dictionary<string, long>(StringComparer.Ordinal);
            _byNode.Add(node.UsageField, leases);
        }

        return leases;
    }

    /// <summary>Drops the node's expired leases and counts the rest.</summary>
    public int Live(QuotaNode node, long nowMs)
    {
        var leases = Of(node);
        foreach (var (id, expiry) in leases)
        {
            if (expiry <= nowMs)
            {
                leases.Remove(id);
            }
        }

        return leases.Count;
    }

    /// <summary>The expiries of the node's leases still alive at <paramref name="nowMs"/>, in order (tests compare them with Redis).</summary>
    public long[] LiveExpiries(QuotaNode node, long nowMs) => [.. Of(node).Values.Where(e => e > nowMs).Order()];
}
