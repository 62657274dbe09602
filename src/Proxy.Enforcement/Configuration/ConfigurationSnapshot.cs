using System.Net;
using Microsoft.Extensions.Configuration;
using QuotaProxy.Enforcement.Identity;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// One consistent state of the configuration: the file as configured, the runtime overrides, and what is
/// built from them. A request reads one snapshot and takes everything from it, so a reload or an admin
/// change is seen whole or not at all.
/// </summary>
/// <param name="Configured">The options as configured (the file), before overrides.</param>
/// <param name="Routes">The <c>ReverseProxy:Routes</c> these were validated with.</param>
/// <param name="Options">The effective options: overrides applied.</param>
internal sealed record ConfigurationSnapshot(
    QuotaOptions Configured,
    IConfigurationSection Routes,
    QuotaOptions Options,
    QuotaModel Model,
    CallerIdentifier Identifier,
    IReadOnlyDictionary<string, TenantOverride> Overrides)
{
    /// <summary>Builds a snapshot from options the validator has accepted.</summary>
    public static ConfigurationSnapshot Create(QuotaOptions configured, IConfigurationSection routes, QuotaOptions effective, IReadOnlyDictionary<string, TenantOverride> overrides) => new(
        configured,
        routes,
        effective,
        QuotaModelBuilder.Build(effective, Pricing.RouteQuota.PoolsOfRoutes(routes)),
        CreateIdentifier(effective.Identity),
        overrides);

    private static CallerIdentifier CreateIdentifier(IdentityOptions identity) => new(
        identity.ApiKeyHeader,
        identity.TenantHeader,
        identity.ApiKeys.Select(key => KeyValuePair.Create(key.Sha256, key.Tenant)),
        identity.TrustTenantHeader,
        identity.TrustedNetworks.Select(IPNetwork.Parse),
        identity.KeyPepper);
}
