using System.Globalization;
using QuotaProxy.Enforcement.Identity;

namespace QuotaProxy.Testing;

/// <summary>
/// The configuration of a proxy under test, as flat configuration keys: the same keys an operator writes in
/// appsettings. Every test builds its proxy through this one builder.
/// </summary>
public sealed class TestProxyConfig
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.OrdinalIgnoreCase);
    private int _apiKeys;

    public TestProxyConfig(string vendorUrl)
    {
        _values["ReverseProxy:Clusters:vendor:Destinations:d1:Address"] = vendorUrl;
        _values["Quota:Store:Kind"] = "InProcess";
    }

    public TestProxyConfig Pool(string name, long limit, string window = "1d", string? timeZone = null, params (string Name, long? Limit)[] tenants)
    {
        _values[$"Quota:Pools:{name}:Limit"] = limit.ToString(CultureInfo.InvariantCulture);
        _values[$"Quota:Pools:{name}:Window"] = window;
        if (timeZone is not null)
        {
            _values[$"Quota:Pools:{name}:TimeZone"] = timeZone;
        }

        foreach (var (tenant, tenantLimit) in tenants)
        {
            // An empty section still declares the tenant; Limit unset means the pool's.
            _values[$"Quota:Pools:{name}:Tenants:{tenant}:Limit"] = tenantLimit?.ToString(CultureInfo.InvariantCulture);
        }

        return this;
    }

    /// <summary>A route <c>/{id}/{**rest}</c> to the vendor, with the prefix removed; metered when <paramref name="pool"/> is set.</summary>
    public TestProxyConfig Route(string id, string? pool = null, long? cost = null)
    {
        _values[$"ReverseProxy:Routes:{id}:ClusterId"] = "vendor";
        _values[$"ReverseProxy:Routes:{id}:Match:Path"] = $"/{id}/{{**rest}}";
        _values[$"ReverseProxy:Routes:{id}:Transforms:0:PathRemovePrefix"] = $"/{id}";
        if (pool is not null)
        {
            _values[$"ReverseProxy:Routes:{id}:Metadata:Quota.Pool"] = pool;
        }

        if (cost is not null)
        {
            _values[$"ReverseProxy:Routes:{id}:Metadata:Quota.Cost"] = cost.Value.ToString(CultureInfo.InvariantCulture);
        }

        return this;
    }

    /// <param name="pepper">The deployment's KeyPepper, if any: the digest is keyed by it.</param>
    public TestProxyConfig ApiKey(string key, string tenant, string? pepper = null)
    {
        _values[$"Quota:Identity:ApiKeys:{_apiKeys}:Sha256"] = ApiKeyHash.Compute(key, pepper);
        _values[$"Quota:Identity:ApiKeys:{_apiKeys}:Tenant"] = tenant;
        _apiKeys++;
        return this;
    }

    public TestProxyConfig TrustTenantHeader(params string[] networks)
    {
        _values["Quota:Identity:TrustTenantHeader"] = "true";
        if (networks.Length == 0)
        {
            _values["Quota:Identity:AllowTenantHeaderFromAnyNetwork"] = "true"; // said explicitly, as the proxy requires
        }

        for (var i = 0; i < networks.Length; i++)
        {
            _values[$"Quota:Identity:TrustedNetworks:{i}"] = networks[i];
        }

        return this;
    }

    public TestProxyConfig VendorCredential(string header, string value)
    {
        _values["Quota:Upstreams:vendor:Credential:Header"] = header;
        _values["Quota:Upstreams:vendor:Credential:Value"] = value;
        return this;
    }

    /// <param name="timeout">
    /// The store timeout; by default 2 s rather than production's 50 ms: on a loaded 2-core CI machine a slow
    /// decision is not what most tests are about, and a 503 there would be a flake. The outage tests set
    /// their own.
    /// </param>
    public TestProxyConfig Redis(string connectionString, string keyPrefix, TimeSpan? timeout = null)
    {
        _values["Quota:Store:Kind"] = "Redis";
        _values["Quota:Store:Redis"] = connectionString;
        _values["Quota:Store:KeyPrefix"] = keyPrefix;
        _values["Quota:Store:Timeout"] = (timeout ?? TimeSpan.FromSeconds(2)).ToString("c", CultureInfo.InvariantCulture);
        return this;
    }

    /// <summary>The admin API on <paramref name="port"/> (loopback), with one admin key held by <paramref name="name"/>.</summary>
    public TestProxyConfig Admin(int port, string key, string name = "ops")
    {
        _values["Quota:Admin:Url"] = $"http://127.0.0.1:{port}";
        _values["Quota:Admin:Keys:0:Name"] = name;
        _values["Quota:Admin:Keys:0:Sha256"] = ApiKeyHash.Compute(key);
        return this;
    }

    public TestProxyConfig Set(string key, string? value)
    {
        _values[key] = value;
        return this;
    }

    public IReadOnlyDictionary<string, string?> Values => _values;

    /// <summary>Writes these keys as the nested JSON an operator would keep in appsettings (numeric keys are array indices to the binder).</summary>
    public void WriteJson(string path)
    {
        var root = new System.Text.Json.Nodes.JsonObject();
        foreach (var (key, value) in _values.OrderBy(pair => pair.Key, StringComparer.Ordinal))
        {
            var parts = key.Split(':');
            var node = root;
            foreach (var part in parts[..^1])
            {
                node = node[part] as System.Text.Json.Nodes.JsonObject ?? (System.Text.Json.Nodes.JsonObject)(node[part] = new System.Text.Json.Nodes.JsonObject());
            }

            // A null value still declares its section (an empty tenant is a tenant).
            node[parts[^1]] = value is null ? new System.Text.Json.Nodes.JsonObject() : System.Text.Json.Nodes.JsonValue.Create(value);
        }

        // Written whole and then moved, as editors and config management do, so the watcher never reads half a file.
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, root.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        File.Move(temporary, path, overwrite: true);
    }
}
