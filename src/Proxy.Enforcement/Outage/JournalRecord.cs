namespace QuotaProxy.Enforcement.Outage;

/// <summary>
/// One line of the emergency journal: an admission made while the store was unreachable (its pools with
/// the window each was in, the tenant, the cost, the route and request for the ledger), or, in
/// <see cref="Done"/>, the id of one the store has since been charged with.
/// </summary>
internal sealed record JournalRecord(
    string? Id = null,
    long AtMs = 0,
    string? Tenant = null,
    long Cost = 0,
    string? Route = null,
    string? RequestId = null,
    IReadOnlyList<JournalPool>? Pools = null,
    string? Done = null);
