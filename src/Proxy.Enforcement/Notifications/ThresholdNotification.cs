namespace QuotaProxy.Enforcement.Notifications;

/// <summary>
/// A node crossed one of its <c>Notify</c> thresholds in a window: the JSON body every webhook receives.
/// <see cref="Id"/> is the same whichever replica sends it (and on every retry): the receiver's idempotency key.
/// </summary>
/// <param name="Node">The tenant's path, or null for the pool itself.</param>
/// <param name="Threshold">The percentage crossed.</param>
/// <param name="Used">Credits used when the crossing was seen.</param>
/// <param name="Limit">The node's effective limit (the smallest on its path; the pool's Limit for the pool).</param>
internal sealed record ThresholdNotification(
    string Id, string Type, string Pool, string? Node, int Threshold, long Used, long Limit, DateTimeOffset WindowStart, DateTimeOffset WindowEnd, DateTimeOffset At)
{
    public const string EventType = "quota.threshold";
}
