namespace QuotaProxy.Enforcement.Quotas;

/// <summary>A window as Unix milliseconds, start inclusive, end exclusive.</summary>
internal readonly record struct WindowBounds(long StartMs, long EndMs)
{
    public DateTimeOffset Start => DateTimeOffset.FromUnixTimeMilliseconds(StartMs);

    public DateTimeOffset End => DateTimeOffset.FromUnixTimeMilliseconds(EndMs);

    public TimeSpan Length => TimeSpan.FromMilliseconds(EndMs - StartMs);
}
