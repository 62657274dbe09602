using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Observability;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// Holds the counters against the ledger (<see cref="StoreBaselines.AuditConfiguredAsync"/>) whenever the
/// connection comes back or the client reconfigures (a Sentinel switching masters): the Redis now answering
/// may be a replica promoted before it had every write. One audit at a time; changes while one runs bring
/// one more after it.
/// </summary>
internal sealed class FailoverAudit(IConnectionMultiplexer connection, StoreBaselines baselines, ILogger<FailoverAudit> logger) : IHostedService
{
    /// <summary>How long an audit is tried again while Redis refuses it: a promoted replica takes writes once a replica follows it.</summary>
    internal static readonly TimeSpan RetryFor = TimeSpan.FromSeconds(30);

    private readonly Lock _gate = new();
    private Task _running = Task.CompletedTask;
    private bool _again;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        connection.ConnectionRestored += OnConnectionRestored;
        connection.ConfigurationChanged += OnConfigurationChanged;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        connection.ConnectionRestored -= OnConnectionRestored;
        connection.ConfigurationChanged -= OnConfigurationChanged;
        return Task.CompletedTask;
    }

    /// <summary>The audit running or last run (tests wait for it).</summary>
    internal Task Running
    {
        get
        {
            lock (_gate)
            {
                return _running;
            }
        }
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        if (e.ConnectionType == ConnectionType.Interactive)
        {
            Request();
        }
    }

    private void OnConfigurationChanged(object? sender, EndPointEventArgs e) => Request();

    private void Request()
    {
        lock (_gate)
        {
            if (!_running.IsCompleted)
            {
                _again = true;
                return;
            }

            _running = RunAsync();
        }
    }

    private async Task RunAsync()
    {
        while (true)
        {
            try
            {
                await baselines.AuditConfiguredAsync(RetryFor).ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                return; // stopping
            }
            catch (Exception ex)
            {
                QuotaLog.StoreAuditFailed(logger, "(all)", ex);
            }

            lock (_gate)
            {
                if (!_again)
                {
                    return;
                }

                _again = false;
            }
        }
    }
}
