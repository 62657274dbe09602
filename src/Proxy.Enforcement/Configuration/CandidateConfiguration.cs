using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Yarp.ReverseProxy.Configuration;

namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// The one place a configuration is validated, once per load (the start, every reload, every admin
/// change): keys and value types, the quota rules on the options with the runtime overrides applied, and
/// YARP's own rules for the routes and clusters. Every error is reported at once; a value of the wrong
/// type is reported and left out, so it hides none of the other errors.
/// </summary>
internal static class CandidateConfiguration
{
    /// <summary>A whole configuration (the <c>Quota</c> and <c>ReverseProxy</c> sections) with <paramref name="overrides"/> applied.</summary>
    /// <returns>The snapshot to put in force, or null with every error in <paramref name="errors"/>.</returns>
    /// <param name="pin">Adjusts the options as read, before the rules run (a reload keeps the sections only a restart changes).</param>
    public static ConfigurationSnapshot? Load(
        IConfiguration configuration, IReadOnlyDictionary<string, TenantOverride> overrides, Func<string, string?> environment, out List<string> errors, Func<QuotaOptions, QuotaOptions>? pin = null)
    {
        errors = [];
        var configured = QuotaOptionsValidator.Read(configuration, errors, out var invalid);
        configured = pin?.Invoke(configured) ?? configured;
        // A copy: the live configuration moves on with the files, a snapshot must not.
        var routes = new ConfigurationBuilder()
            .AddInMemoryCollection(configuration.GetSection(QuotaOptionsValidator.RoutesSection).AsEnumerable())
            .Build()
            .GetSection(QuotaOptionsValidator.RoutesSection);
        errors.AddRange(ValidateProxySection(configuration.GetSection("ReverseProxy")));
        return Apply(configured, routes, overrides, environment, errors, invalid);
    }

    /// <summary>The configuration in force with other overrides: the routes were validated when they were loaded.</summary>
    public static ConfigurationSnapshot? WithOverrides(ConfigurationSnapshot current, IReadOnlyDictionary<string, TenantOverride> overrides, out List<string> errors)
    {
        errors = [];
        return Apply(current.Configured, current.Routes, overrides, Environment.GetEnvironmentVariable, errors, new HashSet<string>());
    }

    private static ConfigurationSnapshot? Apply(
        QuotaOptions configured, IConfigurationSection routes, IReadOnlyDictionary<string, TenantOverride> overrides, Func<string, string?> environment, List<string> errors, IReadOnlySet<string> invalid)
    {
        var effective = TenantOverride.Apply(configured, overrides.Values, stale: []);
        // A value left out for its type is already reported; a rule about the default in its place would only repeat it.
        errors.AddRange(QuotaOptionsValidator.Validate(effective, routes, environment)
            .Where(error => !invalid.Any(path => error.StartsWith(path + " ", StringComparison.OrdinalIgnoreCase) || error.StartsWith(path + ":", StringComparison.OrdinalIgnoreCase))));
        return errors.Count == 0 ? ConfigurationSnapshot.Create(configured, routes, effective, overrides) : null;
    }

    /// <summary>
    /// YARP's own validation of routes and clusters (match, transforms, destinations, policies), run on the
    /// candidate before the proxy takes it, so that a route YARP would refuse is never reported as applied.
    /// </summary>
    internal static List<string> ValidateProxySection(IConfigurationSection reverseProxy)
    {
        var errors = new List<string>();
        var services = new ServiceCollection();
        services.AddSingleton(typeof(Microsoft.Extensions.Logging.ILogger<>), typeof(NullLogger<>));
        services.AddSingleton<Microsoft.Extensions.Logging.ILoggerFactory>(NullLoggerFactory.Instance);
        services.AddReverseProxy().LoadFromConfig(reverseProxy);
        using var provider = services.BuildServiceProvider();
        IProxyConfig config;
        try
        {
            config = provider.GetRequiredService<IProxyConfigProvider>().GetConfig();
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException or ArgumentException)
        {
            errors.Add($"ReverseProxy: {ex.Message}");
            return errors;
        }

        var validator = provider.GetRequiredService<Yarp.ReverseProxy.Configuration.IConfigValidator>();
        foreach (var route in config.Routes)
        {
            foreach (var error in validator.ValidateRouteAsync(route).AsTask().GetAwaiter().GetResult())
            {
                errors.Add($"ReverseProxy:Routes:{route.RouteId}: {error.Message}");
            }
        }

        foreach (var cluster in config.Clusters)
        {
            foreach (var error in validator.ValidateClusterAsync(cluster).AsTask().GetAwaiter().GetResult())
            {
                errors.Add($"ReverseProxy:Clusters:{cluster.ClusterId}: {error.Message}");
            }
        }

        return errors;
    }
}
