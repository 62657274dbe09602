
namespace QuotaProxy.StandIn;

/// <summary>
/// A local stand-in for the vendor API, so that the README's run command shows a forwarded request and a 429
/// with nothing else installed. Off unless <c>StandInVendor:Url</c> is set; never used in production configs.
/// It answers every path with JSON echoing what it received, and counts the calls it served.
/// </summary>
internal sealed class StandInVendor(string url, ILogger<StandInVendor> logger) : IHostedService, IAsyncDisposable
{
    private WebApplication? _app;
    private long _calls;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(url);
        builder.Logging.ClearProviders();
        _app = builder.Build();
        _app.Run(async context =>
        {
            var call = Interlocked.Increment(ref _calls);
            await context.Response.WriteAsJsonAsync(new StandInReply(
                "stand-in vendor",
                call,
                context.Request.Path.Value ?? "/",
                context.Request.Headers["X-Vendor-Key"].Count > 0));
        });
        await _app.StartAsync(cancellationToken);
        StandInLog.Started(logger, url);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is not null)
        {
            await _app.StopAsync(cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync();
        }
    }

    internal sealed record StandInReply(string Vendor, long Call, string Path, bool VendorKeyReceived);
}
