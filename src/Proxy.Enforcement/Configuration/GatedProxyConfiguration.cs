using Microsoft.Extensions.Configuration;

namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// The <c>ReverseProxy</c> section YARP reads: the live configuration's as of its last valid state. YARP
/// watches the live files itself; reading through this gate instead, it sees a route only once the whole
/// configuration (routes with their pools, costs and keys) has passed validation.
/// </summary>
internal sealed class GatedProxyConfiguration
{
    private readonly GatedProvider _provider = new();

    public GatedProxyConfiguration(IConfiguration live)
    {
        Root = new ConfigurationRoot([_provider]);
        Publish(Flatten(live));
    }

    public IConfigurationRoot Root { get; }

    public IConfigurationSection ReverseProxy => Root.GetSection("ReverseProxy");

    public IConfigurationSection Routes => Root.GetSection(QuotaOptionsValidator.RoutesSection);

    /// <summary>Takes these <c>ReverseProxy</c> keys (<see cref="Flatten"/>); YARP reloads its routes and clusters from them.</summary>
    public void Publish(Dictionary<string, string?> data) => _provider.Replace(data);

    /// <summary>The live section's keys and values, to tell whether an edit touched it.</summary>
    public static Dictionary<string, string?> Flatten(IConfiguration live) =>
        live.GetSection("ReverseProxy").AsEnumerable().Where(pair => pair.Value is not null).ToDictionary(StringComparer.OrdinalIgnoreCase);

    public bool Holds(Dictionary<string, string?> data) => _provider.Holds(data);

    private sealed class GatedProvider : ConfigurationProvider
    {
        public void Replace(Dictionary<string, string?> data)
        {
            Data = data;
            OnReload();
        }

        public bool Holds(Dictionary<string, string?> data) =>
            data.Count == Data.Count && data.All(pair => Data.TryGetValue(pair.Key, out var value) && value == pair.Value);
    }
}
