using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace QuotaProxy.Testing;

/// <summary>The real proxy (the same host the binary runs) on a real loopback socket, configured only by the test.</summary>
public sealed class ProxyInstance : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _disposed;

    private ProxyInstance(WebApplication app, Uri address, Uri? adminAddress, CollectedLogs logs)
    {
        _app = app;
        Logs = logs;
        Address = address;
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
        AdminAddress = adminAddress;
        Admin = adminAddress is null ? null : new HttpClient { BaseAddress = adminAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public Uri Address { get; }

    public HttpClient Client { get; }

    /// <summary>The admin API's address and a client for it (no key set: tests send their own), when the config has one.</summary>
    public Uri? AdminAddress { get; }

    public HttpClient? Admin { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>What this proxy logged at Warning and above.</summary>
    public CollectedLogs Logs { get; }

    public static Task<ProxyInstance> StartAsync(TestProxyConfig config) => StartAsync(config, file: null);

    /// <summary>
    /// The proxy configured from <paramref name="file"/>, a JSON file it watches as the binary watches its
    /// <c>--config</c> file: tests edit it to see hot reload. <paramref name="config"/> is written there first.
    /// </summary>
    public static Task<ProxyInstance> StartFromFileAsync(TestProxyConfig config, string file)
    {
        config.WriteJson(file);
        return StartAsync(config, file);
    }

    private static async Task<ProxyInstance> StartAsync(TestProxyConfig config, string? file)
    {
        // Warning and above unless the test asks for more (Logging:LogLevel:Default): every line the proxy writes at that level is collected.
        var level = config.Values.GetValueOrDefault("Logging:LogLevel:Default") is { } asked && Enum.TryParse<LogLevel>(asked, out var parsed) ? parsed : LogLevel.Warning;
        var logs = new CollectedLogs(level);
        var app = QuotaProxyHost.Build(
            [],
            builder =>
            {
                // Nothing from the repo's appsettings.json or the machine's environment: only what the test says.
                builder.Sources.Clear();
                if (file is null)
                {
                    builder.AddInMemoryCollection(config.Values);
                }
                else
                {
                    builder.AddJsonFile(file, optional: false, reloadOnChange: true);
                }

                builder.AddInMemoryCollection(new Dictionary<string, string?>
                {
                    ["Urls"] = "http://127.0.0.1:0",
                    ["Logging:LogLevel:Default"] = level.ToString(),
                });
            },
            logging => logging.AddProvider(logs));
        try
        {
            await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (IOException ex) when (ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException && config.Values.ContainsKey("Quota:Admin:Url") && file is null)
        {
            // The admin port has to be named before the start, and another test took it in between: another one.
            await app.DisposeAsync();
            config.Set("Quota:Admin:Url", $"http://127.0.0.1:{LoopbackPorts.Free()}");
            return await StartAsync(config, file);
        }

        var admin = config.Values.GetValueOrDefault("Quota:Admin:Url") is { } url ? new Uri(url) : null;
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Select(a => new Uri(a));
        return new ProxyInstance(app, addresses.Single(a => a.Port != admin?.Port), admin, logs);
    }

    /// <summary>GET <paramref name="path"/> with an API key (none: an unidentified caller) and any other headers, as sent without validation: the status answered.</summary>
    public async Task<System.Net.HttpStatusCode> StatusAsync(string? apiKey, string path, params (string Name, string Value)[] headers)
    {
        using var message = new HttpRequestMessage(HttpMethod.Get, path);
        if (apiKey is not null)
        {
            message.Headers.Add("X-Api-Key", apiKey);
        }

        foreach (var (name, value) in headers)
        {
            message.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await Client.SendAsync(message);
        return response.StatusCode;
    }

    /// <summary>GET <c>/downloads/file</c> (the metered route most tests declare) with an API key.</summary>
    public async Task<HttpResponseMessage> GetAsync(string apiKey, string path = "/downloads/file")
    {
        using var message = new HttpRequestMessage(HttpMethod.Get, path);
        message.Headers.Add("X-Api-Key", apiKey);
        return await Client.SendAsync(message);
    }

    /// <summary>
    /// Sends <paramref name="count"/> such requests one after another: how many got a 200, every status, and
    /// the problem body of the last answer that was not a 200.
    /// </summary>
    public async Task<SendResult> SendAsync(string apiKey, int count, string path = "/downloads/file")
    {
        var statuses = new List<System.Net.HttpStatusCode>();
        System.Text.Json.JsonElement? problem = null;
        for (var i = 0; i < count; i++)
        {
            using var response = await GetAsync(apiKey, path);
            statuses.Add(response.StatusCode);
            if (response.StatusCode != System.Net.HttpStatusCode.OK)
            {
                problem = await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<System.Text.Json.JsonElement>(response.Content);
            }
        }

        return new SendResult(statuses.Count(s => s == System.Net.HttpStatusCode.OK), statuses, problem);
    }

    /// <summary>Scrapes this proxy's <c>/metrics</c>, as Prometheus would.</summary>
    public async Task<ScrapedMetrics> MetricsAsync()
    {
        using var response = await Client.GetAsync("/metrics");
        response.EnsureSuccessStatusCode();
        return new ScrapedMetrics(await response.Content.ReadAsStringAsync());
    }

    /// <summary>Scrapes <c>/metrics</c> until <paramref name="until"/> holds or 10 s have passed, and returns the last page either way.</summary>
    public async Task<ScrapedMetrics> MetricsWhenAsync(Func<ScrapedMetrics, bool> until)
    {
        var metrics = await MetricsAsync();
        for (var deadline = DateTime.UtcNow.AddSeconds(10); !until(metrics) && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(100);
            metrics = await MetricsAsync();
        }

        return metrics;
    }

    /// <summary>Stops the proxy; a second call does nothing, so a test may stop a replica early inside <c>await using</c>.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        Client.Dispose();
        Admin?.Dispose();
        await _app.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
        await _app.DisposeAsync();
    }
}

/// <summary>What <see cref="ProxyInstance.SendAsync"/> saw.</summary>
public sealed record SendResult(int Admitted, IReadOnlyList<System.Net.HttpStatusCode> Statuses, System.Text.Json.JsonElement? LastProblem);
