using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.Options;
using QuotaProxy.Enforcement;
using QuotaProxy.Enforcement.Admin;
using QuotaProxy.Enforcement.Http;
using QuotaProxy.StandIn;

namespace QuotaProxy;

/// <summary>Builds and runs the proxy: YARP with the quota step, plus the stand-in vendor when it is switched on.</summary>
public static class QuotaProxyHost
{
    public const int InvalidConfigurationExitCode = 2;

    /// <param name="args">
    /// Command line; <c>--config FILE</c> makes that JSON file the configuration in place of appsettings.json
    /// (environment variables and the command line still apply on top).
    /// </param>
    /// <param name="configure">Extra configuration (tests use it to point at their own servers).</param>
    /// <param name="logging">Extra logging (tests collect what the proxy logs).</param>
    public static WebApplication Build(string[] args, Action<IConfigurationBuilder>? configure = null, Action<ILoggingBuilder>? logging = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        // Beneath every other source, so that any configuration can set it back: while this category logs at
        // all, ASP.NET Core starts an Activity and a logging scope for every request (and the forwarder then
        // sends a traceparent to the vendor), about 7 % of the proxy's throughput (docs/benchmarks.md). It
        // only logs "Request starting/finished"; tracing, when configured, starts its own activities.
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource
        {
            InitialData = [new("Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics", "None")],
        });
        logging?.Invoke(builder.Logging);
        if (builder.Configuration["config"] is { Length: > 0 } file)
        {
            // The file stands alone. appsettings.json is the embedded demo (a stand-in vendor, demo API keys, an
            // admin API with a published key): merged under a real config, its keys and admin API would stay live.
            foreach (var demo in builder.Configuration.Sources.OfType<JsonConfigurationSource>().Where(IsAppSettings).ToList())
            {
                builder.Configuration.Sources.Remove(demo);
            }

            // Watched: an edit is validated and, when valid, in force within a second (hot reload).
            builder.Configuration.AddJsonFile(Path.GetFullPath(file), optional: false, reloadOnChange: true);
            builder.Configuration.AddEnvironmentVariables();
            builder.Configuration.AddCommandLine(args);
        }

        configure?.Invoke(builder.Configuration);

        ListenForAdmin(builder);
        // Validates the whole configuration once, every error at once (an OptionsValidationException).
        builder.Services.AddQuotaProxy(builder.Configuration);
        builder.Services.AddStandInVendor(builder.Configuration);

        var app = builder.Build();
        app.UseFrameworkProblems();
        app.UseQuotaForwardedHeaders();
        app.UseRequestTimeouts();
        app.MapQuotaOperations();
        app.MapQuotaAdmin();
        app.MapQuotaDecide();
        app.MapQuotaProxy();
        return app;
    }

    private static bool IsAppSettings(JsonConfigurationSource source) =>
        source.Path is { } path && Path.GetFileName(path).StartsWith("appsettings.", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// With <c>Quota:Admin:Url</c> set, Kestrel listens there too, beside the proxy's own URLs (<c>Urls</c>,
    /// <c>ASPNETCORE_HTTP_PORTS</c>, else ASP.NET Core's default). The admin endpoints answer only there.
    /// </summary>
    private static void ListenForAdmin(WebApplicationBuilder builder)
    {
        if (builder.Configuration["Quota:Admin:Url"] is not { Length: > 0 } admin)
        {
            return;
        }

        var proxy = builder.Configuration["urls"] is { Length: > 0 } urls
            ? urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : builder.Configuration["http_ports"] is { Length: > 0 } ports
                ? ports.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(port => $"http://*:{port}").ToArray()
                : ["http://localhost:5000"];
        if (Uri.TryCreate(admin, UriKind.Absolute, out var adminUri)
            && proxy.Any(url => Uri.TryCreate(url.Replace("*", "localhost", StringComparison.Ordinal).Replace("+", "localhost", StringComparison.Ordinal), UriKind.Absolute, out var proxyUri) && proxyUri.Port == adminUri.Port))
        {
            throw new OptionsValidationException(
                "Quota",
                typeof(QuotaProxy.Enforcement.Configuration.QuotaOptions),
                [$"Quota:Admin:Url {admin} is on the proxy's own port ({string.Join(", ", proxy)}): the admin API needs a port of its own, which callers of the proxy cannot reach."]);
        }

        builder.WebHost.UseUrls([.. proxy, admin]);
    }

    public static Task<int> RunAsync(string[] args) => StartOrCheckAsync(args, check: false);

    /// <summary><c>QuotaProxy check --config FILE</c>: validated as a start would, the effective model printed, nothing listened on.</summary>
    public static Task<int> CheckAsync(string[] args) => StartOrCheckAsync(args, check: true);

    private static async Task<int> StartOrCheckAsync(string[] args, bool check)
    {
        try
        {
            // A check prints the model alone: the host's own information lines would mix into it.
            await using var app = Build(args, logging: check ? logging => logging.SetMinimumLevel(LogLevel.Warning) : null);
            if (check)
            {
                await Console.Out.WriteAsync(Enforcement.Configuration.EffectiveConfiguration.Describe(app.Services));
                return 0;
            }

            await app.RunAsync();
            return 0;
        }
        catch (Exception ex) when (ex is FileNotFoundException or InvalidDataException or System.Text.Json.JsonException or FormatException)
        {
            // The --config file is missing, or not JSON: one clear line, not a stack trace.
            await Console.Error.WriteLineAsync($"QuotaProxy did not start: the configuration file cannot be read: {ex.Message}{(ex.InnerException is { } inner ? " " + inner.Message : "")}");
            return InvalidConfigurationExitCode;
        }
        catch (OptionsValidationException ex)
        {
            await Console.Error.WriteLineAsync($"QuotaProxy did not start: the configuration has {ex.Failures.Count()} error(s).");
            foreach (var failure in ex.Failures)
            {
                await Console.Error.WriteLineAsync($"  - {failure}");
            }

            return InvalidConfigurationExitCode;
        }
    }
}
