namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// What the store keeps of one credit lease while it lives: when it ends (<paramref name="ExpiresAtMs"/>, on
/// the clock its decisions use) and the credits it still holds unspent, so that a lease whose replica died
/// is found and counted; with the ledger on, the usage events of what was spent since the last record.
/// </summary>
/// <param name="Sequence">Increases with every record of a replica's leases of one tenant: a record sent again (its reply lost) applies once.</param>
/// <param name="Closed">The lease has ended (returned or forfeited): its record goes.</param>
internal sealed record LeaseRecord(string Id, long Sequence, QuotaNode Tenant, long ExpiresAtMs, long Unspent, bool Closed, IReadOnlyList<LeasedSpend> Spends)
{
    /// <summary>The route the ledger's <see cref="UsageKind.Lease"/> events name: credits no request spent.</summary>
    public const string Route = "(lease)";
}
