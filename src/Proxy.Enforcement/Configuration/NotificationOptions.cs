namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// <c>Quota:Notifications</c>: where threshold notifications (a pool's or tenant's <c>Notify</c>) are sent. Read
/// at start.
/// </summary>
public sealed record NotificationOptions
{
    public List<WebhookOptions> Webhooks { get; init; } = [];

    /// <summary>Attempts per notification and webhook, the first included, before it is given up (logged, counted).</summary>
    public int MaxAttempts { get; init; } = 8;

    /// <summary>The wait before the first retry; each next one doubles it (with jitter).</summary>
    public TimeSpan FirstRetryDelay { get; init; } = TimeSpan.FromSeconds(1);
}
