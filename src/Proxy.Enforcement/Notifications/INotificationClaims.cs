namespace QuotaProxy.Enforcement.Notifications;

/// <summary>Where a threshold's notification is claimed, so that of all the replicas that see it crossed, one sends it.</summary>
internal interface INotificationClaims
{
    /// <summary>True for the one caller that claims <paramref name="id"/> first; the claim lasts <paramref name="lifetime"/>.</summary>
    Task<bool> ClaimAsync(string id, TimeSpan lifetime, CancellationToken cancellationToken);
}
