namespace QuotaProxy.Enforcement.Quotas;

/// <summary>An admitted request's place in the MaxInFlight count of every such node on its paths.</summary>
internal sealed record QuotaLease(string Id, IReadOnlyList<QuotaDebit> Debits)
{
    /// <summary>How long a lease counts when nobody releases it (a proxy died mid-request): <c>Quota:Store:LeaseTtl</c>'s default.</summary>
    public static readonly TimeSpan DefaultTtl = TimeSpan.FromMinutes(2);

    /// <summary>Whether any debit's path has a node with MaxInFlight (a plain loop: it runs on every decision).</summary>
    public static bool Needed(IReadOnlyList<QuotaDebit> debits)
    {
        for (var i = 0; i < debits.Count; i++)
        {
            if (debits[i].Tenant.LeasesOnPath)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A fresh lease id (only requests through a node with MaxInFlight take one).</summary>
    public static string NewId() => Guid.NewGuid().ToString("N");

    /// <summary>The nodes that hold this lease: those with MaxInFlight on each debit's path, pool first.</summary>
    public IEnumerable<(PoolDefinition Pool, QuotaNode Node)> Holders() =>
        Debits.SelectMany(d => d.Tenant.PathFromRoot().Where(n => n.MaxInFlight is not null).Select(n => (d.Pool, n)));
}
