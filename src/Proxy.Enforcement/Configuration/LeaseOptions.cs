namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// A pool's <c>Lease</c>: a replica takes a block of up to <see cref="MaxCredits"/> credits for a tenant in
/// one atomic debit and admits that tenant's requests from it locally, without a store call each, until the
/// block is spent; what it has not spent goes back after <see cref="Ttl"/>. Near any limit the block shrinks
/// to the request's own cost, so no more is ever admitted than exact mode would.
/// </summary>
public sealed record LeaseOptions
{
    /// <summary>The largest block one replica takes for one tenant at once.</summary>
    public long MaxCredits { get; init; }

    /// <summary>How long a block lives; its unspent credits then go back to the pool. Default one second.</summary>
    public TimeSpan Ttl { get; init; } = TimeSpan.FromSeconds(1);
}
