using System.Collections.Frozen;
using System.Net;
using Microsoft.AspNetCore.Http;

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
    private readonly string? _pepper;

    /// <summary>
    /// Digests of keys presented recently: the same few keys come on every request, and SHA-256 through
    /// OpenSSL (with its error-queue upkeep and two buffers) was the largest single cost of identifying a caller.
    /// Bounded: emptied when it reaches <see cref="MaxCachedDigests"/>, so random keys cannot grow it.
    /// Only the digest is cached; what it identifies is looked up every time (a revoked runtime key stops at once).
    /// </summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> _digestByKey = new(StringComparer.Ordinal);

    internal const int MaxCachedDigests = 10_000;

    /// <summary>How many digests the cache holds now (tests hold it to its bound).</summary>
    internal int CachedDigests => _digestByKey.Count;

    /// <param name="tenantByKeyHash">Each API key's SHA-256 (hex, either case) and the tenant it names.</param>
    /// <param name="trustTenantHeader">Whether <paramref name="tenantHeader"/> names the tenant when no key is sent.</param>
    /// <param name="trustedNetworks">Where the tenant header is believed from; empty: from anywhere.</param>
    /// <param name="pepper">With one, the keys' digests are HMAC-SHA-256 keyed by it (<see cref="ApiKeyHash"/>).</param>
    public CallerIdentifier(string apiKeyHeader, string tenantHeader, IEnumerable<KeyValuePair<string, string>> tenantByKeyHash, bool trustTenantHeader, IEnumerable<IPNetwork> trustedNetworks, string? pepper = null)
    {
        _pepper = pepper;
        ApiKeyHeader = apiKeyHeader;
        TenantHeader = tenantHeader;
        _trustTenantHeader = trustTenantHeader;
        _trustedNetworks = [.. trustedNetworks];
        _tenantByKeyHash = tenantByKeyHash.ToFrozenDictionary(k => k.Key.ToLowerInvariant(), k => k.Value, StringComparer.Ordinal);
    }

    public string ApiKeyHeader { get; }

    public string TenantHeader { get; }

    /// <param name="runtimeTenantByDigest">Keys issued at runtime (the admin API): the tenant of a digest, or null.</param>
    /// <returns>The tenant name, or null when the caller is not identified.</returns>
    public string? Identify(HttpContext context, Func<string, string?>? runtimeTenantByDigest = null)
    {
        var headers = context.Request.Headers;
        var apiKey = headers[ApiKeyHeader];
        if (apiKey.Count > 0)
        {
            // A key that is presented but unknown identifies nobody, even if a tenant header is present too.
            var digest = DigestOf(apiKey.ToString());
            return _tenantByKeyHash.GetValueOrDefault(digest) ?? runtimeTenantByDigest?.Invoke(digest);
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

    private string DigestOf(string apiKey)
    {
        if (_digestByKey.TryGetValue(apiKey, out var digest))
        {
            return digest;
        }

        digest = ApiKeyHash.Compute(apiKey, _pepper);
        if (_digestByKey.Count >= MaxCachedDigests)
        {
            _digestByKey.Clear();
        }

        _digestByKey.TryAdd(apiKey, digest);
        return digest;
    }

    private bool IsFromTrustedNetwork(IPAddress? remote)
    {
        if (_trustedNetworks.Length == 0)
        {
            return true; // only with AllowTenantHeaderFromAnyNetwork: the validator refuses it otherwise
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
