using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace QuotaProxy.Testing;

/// <summary>The real proxy (the same host the binary runs) on a real loopback socket, configured only by the test.</summary>
public sealed class ProxyInstance : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ProxyInstance(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
    }

    public Uri Address { get; }

    public HttpClient Client { get; }

    public IServiceProvider Services => _app.Services;

    public static async Task<ProxyInstance> StartAsync(TestProxyConfig config)
    {
        var app = QuotaProxyHost.Build([], builder =>
        {
            // Nothing from the repo's appsettings.json or the machine's environment: only what the test says.
            builder.Sources.Clear();
            builder.AddInMemoryCollection(config.Values);
            builder.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Urls"] = "http://127.0.0.1:0",
                ["Logging:LogLevel:Default"] = "Warning",
            });
        });
        await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return new ProxyInstance(app, new Uri(address));
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
        await _app.DisposeAsync();
    }
}
