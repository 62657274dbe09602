namespace QuotaProxy.Enforcement.Quotas;

/// <summary>A pool's credit leases: blocks of at most <paramref name="MaxCredits"/> that live for <paramref name="Ttl"/> (see <c>LeaseOptions</c>).</summary>
internal sealed record LeaseSettings(long MaxCredits, TimeSpan Ttl);
