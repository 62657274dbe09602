namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// The store's answer for a route: one <see cref="QuotaDecision"/> per pool the route draws on, in the
/// route's order, each with that pool's own verdict. The route is admitted (and every pool debited) only
/// when every pool admits; otherwise nothing is debited anywhere.
/// </summary>
/// <param name="LimitingIndex">The first pool that rejected, or -1.</param>
/// <param name="Lease">When admitted and a node on a path has MaxInFlight: the lease to release when the response ends.</param>
/// <param name="Emergency">Admitted from a pool's emergency allowance while the store was unreachable (journaled, charged later).</param>
internal sealed record RouteDecision(bool Admitted, int LimitingIndex, IReadOnlyList<QuotaDecision> Pools, QuotaLease? Lease = null, bool Emergency = false)
{
    /// <summary>Admitted from this replica's credit lease of that id, without a store decision of its own (its spend reaches the ledger with the lease's records).</summary>
    public string? CreditLease { get; init; }

    /// <summary>The pool headers and problem bodies speak for: the one that rejected, else the one with the least remaining.</summary>
    public int ReportedIndex
    {
        get
        {
            if (!Admitted)
            {
                return LimitingIndex;
            }

            var reported = 0;
            for (var i = 1; i < Pools.Count; i++)
            {
                if (Pools[i].Remaining < Pools[reported].Remaining)
                {
                    reported = i;
                }
            }

            return reported;
        }
    }
}
