namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// A pool's <c>Wait</c>: a request the pool would refuse for a reason that frees itself within
/// <see cref="MaxWait"/> (a Rate, a MaxInFlight, a vendor closure ending, the window ending) waits for the
/// capacity instead of getting 429 at once, and is admitted by priority, then arrival, when it exists.
/// </summary>
public sealed record WaitOptions
{
    /// <summary>The longest a request waits; then it gets the usual 429.</summary>
    public TimeSpan MaxWait { get; init; }

    /// <summary>The most requests waiting on this pool in one replica; one more gets 429 at once.</summary>
    public int MaxQueued { get; init; } = 1000;
}
