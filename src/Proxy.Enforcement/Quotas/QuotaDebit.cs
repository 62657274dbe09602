namespace QuotaProxy.Enforcement.Quotas;

/// <summary>One request's claim on a pool: <paramref name="Cost"/> credits for the tenant node <paramref name="Tenant"/>.</summary>
internal readonly record struct QuotaDebit(PoolDefinition Pool, QuotaNode Tenant, long Cost);
