using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Observability;

namespace QuotaProxy.Enforcement.Notifications;

/// <summary>
/// Sends each threshold notification to every webhook of <c>Quota:Notifications</c>: a JSON POST with
/// <c>Idempotency-Key</c> (the notification's id, the same on every retry), <c>X-QuotaProxy-Event</c> and
/// <c>X-QuotaProxy-Signature: t=&lt;unix seconds&gt;,v1=&lt;hex HMAC-SHA256(key, t + "." + body)&gt;</c>. An answer
/// other than 2xx, or none within 10 s, is retried with exponential backoff and jitter (Polly) from
/// <c>FirstRetryDelay</c>, up to <c>MaxAttempts</c>; then it is given up, logged (event 1402) and counted. Each
/// webhook is tried on its own: a receiver that is down delays no other.
/// </summary>
internal sealed class WebhookSender(NotificationOptions options, Func<string, string?> environment, QuotaMetrics metrics, ILogger<WebhookSender> logger) : BackgroundService
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private readonly Channel<ThresholdNotification> _queue = Channel.CreateUnbounded<ThresholdNotification>(new UnboundedChannelOptions { SingleReader = true });
    private readonly HttpClient _client = new() { Timeout = TimeSpan.FromSeconds(10) };

    public bool Enabled => options.Webhooks.Count > 0;

    public void Enqueue(ThresholdNotification notification) => _queue.Writer.TryWrite(notification);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var deliveries = new List<Task>();
        try
        {
            await foreach (var notification in _queue.Reader.ReadAllAsync(stoppingToken))
            {
                deliveries.RemoveAll(task => task.IsCompleted);
                deliveries.AddRange(options.Webhooks.Select(webhook => DeliverAsync(webhook, notification, stoppingToken)));
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: deliveries under way end with it.
        }

        await Task.WhenAll(deliveries);
    }

    private async Task DeliverAsync(WebhookOptions webhook, ThresholdNotification notification, CancellationToken stoppingToken)
    {
        var body = JsonSerializer.Serialize(notification, Json);
        var attempts = 0;
        var retry = new ResiliencePipelineBuilder<bool>()
            .AddRetry(new RetryStrategyOptions<bool>
            {
                MaxRetryAttempts = options.MaxAttempts - 1,
                Delay = options.FirstRetryDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is HttpRequestException or TaskCanceledException || args.Outcome.Result is false),
            })
            .Build();
        try
        {
            var delivered = await retry.ExecuteAsync(
                async token =>
                {
                    attempts++;
                    return await SendAsync(webhook, notification, body, token);
                },
                stoppingToken);
            if (delivered)
            {
                metrics.Notification(webhook.Name, "delivered");
                QuotaLog.NotificationDelivered(logger, notification.Id, webhook.Name, attempts);
                return;
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !stoppingToken.IsCancellationRequested)
        {
            QuotaLog.NotificationGivenUp(logger, ex, notification.Id, webhook.Name, attempts);
            metrics.Notification(webhook.Name, "given_up");
            return;
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return;
        }

        QuotaLog.NotificationGivenUp(logger, null, notification.Id, webhook.Name, attempts);
        metrics.Notification(webhook.Name, "given_up");
    }

    private async Task<bool> SendAsync(WebhookOptions webhook, ThresholdNotification notification, string body, CancellationToken cancellationToken)
    {
        var timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        using var request = new HttpRequestMessage(HttpMethod.Post, webhook.Url) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Add("Idempotency-Key", notification.Id);
        request.Headers.Add("X-QuotaProxy-Event", notification.Type);
        request.Headers.Add("X-QuotaProxy-Signature", $"t={timestamp},v1={Sign(environment(webhook.SecretEnvironmentVariable) ?? "", timestamp, body)}");
        try
        {
            using var response = await _client.SendAsync(request, cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                metrics.Notification(webhook.Name, "attempt_failed");
            }

            return response.IsSuccessStatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            // Refused, reset, or no answer within 10 s: tried again.
            metrics.Notification(webhook.Name, "attempt_failed");
            throw;
        }
    }

    /// <summary>The signature's <c>v1</c>: lowercase hex of HMAC-SHA256 over <c>timestamp + "." + body</c>.</summary>
    internal static string Sign(string key, string timestamp, string body) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes($"{timestamp}.{body}")));

    public override void Dispose()
    {
        _client.Dispose();
        base.Dispose();
    }
}
