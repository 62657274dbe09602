using System.Collections.Frozen;
using System.Net;
using Microsoft.AspNetCore.Http;
using QuotaProxy.Enforcement.Configuration;

namespace QuotaProxy.Enforcement.Identity;

/// <summary>
/// Names the tenant behind a request: an API key (looked up by its SHA-256) wins; otherwise the tenant
/// header, but only where the configuration trusts it. No identity means no tenant — never a free pass.
/// </summary>
internal sealed class CallerIdentifier
{
    private readonly FrozenDictionary<string, string> _tenantByKeyHash;
    private readonly IPNetwork[] _trustedNetworks;
    private readonly bool _trustTenantHeader;

    public CallerIdentifier(IdentityOptions options)
    {
        ApiKeyHeader = options.ApiKeyHeader;
        TenantHeader = options.TenantHeader;
        _trustTenantHeader = options.TrustTenantHeader;
        _trustedNetworks = [.. options.TrustedNetworks.Select(IPNetwork.Parse)];
        _tenantByKeyHash = options.ApiKeys.ToFrozenDictionary(k => k.Sha256.ToLowerInvariant(), k => k.Tenant, StringComparer.Ordinal);
    }

    public string ApiKeyHeader { get; }

    public string TenantHeader { get; }

    /// <returns>The tenant name, or null when the caller is not identified.</returns>
    public string? Identify(HttpContext context)
    {
        var headers = context.Request.Headers;
        var apiKey = headers[ApiKeyHeader];
        if (apiKey.Count > 0)
        {
            // A key that is presented but unknown identifies nobody, even if a tenant header is present too.
            return _tenantByKeyHash.GetValueOrDefault(ApiKeyHash.Compute(apiKey.ToString()));
        }

        if (_trustTenantHeader && IsFromTrustedNetwork(context.Connection.RemoteIpAddress))
        {
            var tenant = headers[TenantHeader];
            if (tenant.Count == 1 && !string.IsNullOrWhiteSpace(tenant[0]))
            {
                return tenant[0];
            }
        }

        return null;
    }

    private bool IsFromTrustedNetwork(IPAddress? remote)
    {
        if (_trustedNetworks.Length == 0)
        {
            return true;
        }

        if (remote is null)
        {
            return false;
        }

        var address = remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote;
        foreach (var network in _trustedNetworks)
        {
            if (network.Contains(address))
            {
                return true;
            }
        }

        return false;
    }
}
