using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Observability;

namespace QuotaProxy.Enforcement.Configuration;

/// <summary>Loads the overrides before the proxy serves, then follows every replica's changes (announced, and re-read every 10 s in case an announcement was missed).</summary>
internal sealed class OverrideSync(LiveConfiguration source, IOverrideStore store, ILogger<OverrideSync> logger) : BackgroundService
{
    private static readonly TimeSpan Poll = TimeSpan.FromSeconds(10);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await source.RefreshAsync(cancellationToken);
            await store.SubscribeAsync(() => _ = RefreshQuietlyAsync());
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Redis is away (or answers nonsense) at start: the configured values stand until the next poll reaches it.
            QuotaLog.OverridesUnavailable(logger, ex);
        }

        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Poll, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            await RefreshQuietlyAsync();
        }
    }

    private async Task RefreshQuietlyAsync()
    {
        try
        {
            await source.RefreshAsync(CancellationToken.None);
        }
        catch (Exception ex)
        {
            // A background refresh survives anything: the model in force stays, the next poll tries again.
            QuotaLog.OverridesUnavailable(logger, ex);
        }
    }
}
