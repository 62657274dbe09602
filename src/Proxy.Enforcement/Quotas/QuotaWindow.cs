using System.Diagnostics.CodeAnalysis;

namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// A calendar-aligned window: <c>1s</c>, <c>1m</c>, <c>1h</c>, <c>1d</c> or <c>1mo</c> in a pool's time zone.
/// Sub-day windows have a fixed length and are aligned on the zone's UTC offset; days start at local
/// midnight and months on the 1st, so a day can last 23 or 25 hours.
/// </summary>
internal sealed record QuotaWindow
{
    private QuotaWindow(string text, WindowUnit unit, TimeSpan fixedLength)
    {
        Text = text;
        Unit = unit;
        FixedLength = fixedLength;
    }

    public string Text { get; }

    internal WindowUnit Unit { get; }

    /// <summary>Length of sub-day windows; zero for days and months, whose length follows the calendar.</summary>
    internal TimeSpan FixedLength { get; }

    internal bool IsCalendar => FixedLength == TimeSpan.Zero;

    public static bool TryParse(string? text, [NotNullWhen(true)] out QuotaWindow? window)
    {
        window = text switch
        {
            "1s" => new QuotaWindow(text, WindowUnit.Second, TimeSpan.FromSeconds(1)),
            "1m" => new QuotaWindow(text, WindowUnit.Minute, TimeSpan.FromMinutes(1)),
            "1h" => new QuotaWindow(text, WindowUnit.Hour, TimeSpan.FromHours(1)),
            "1d" => new QuotaWindow(text, WindowUnit.Day, TimeSpan.Zero),
            "1mo" => new QuotaWindow(text, WindowUnit.Month, TimeSpan.Zero),
            _ => null,
        };
        return window is not null;
    }

    /// <summary>The window that holds <paramref name="instant"/>.</summary>
    public WindowBounds Locate(DateTimeOffset instant, TimeZoneInfo zone)
    {
        if (!IsCalendar)
        {
            var lengthMs = (long)FixedLength.TotalMilliseconds;
            var offsetMs = FixedOffsetMilliseconds(instant, zone);
            var ms = instant.ToUnixTimeMilliseconds();
            var startMs = ms - Mod(ms + offsetMs, lengthMs);
            return new WindowBounds(startMs, startMs + lengthMs);
        }

        var local = TimeZoneInfo.ConvertTime(instant, zone).DateTime;
        var localStart = Unit == WindowUnit.Day ? local.Date : new DateTime(local.Year, local.Month, 1);
        var localEnd = Unit == WindowUnit.Day ? localStart.AddDays(1) : localStart.AddMonths(1);
        return new WindowBounds(LocalToUnixMs(localStart, zone), LocalToUnixMs(localEnd, zone));
    }

    /// <summary>
    /// The zone's offset that aligns sub-day windows, reduced modulo the window length. Seconds and minutes
    /// are aligned alike in every zone; hours differ only in zones offset by a fraction of an hour.
    /// </summary>
    internal long FixedOffsetMilliseconds(DateTimeOffset instant, TimeZoneInfo zone) =>
        Mod((long)zone.GetUtcOffset(instant).TotalMilliseconds, (long)FixedLength.TotalMilliseconds);

    /// <summary>
    /// A local wall-clock time as a UTC instant. A boundary the clocks skip (DST at midnight) begins at the
    /// jump; a boundary the clocks pass twice begins at its first occurrence. Both use the offset in force
    /// just before the transition.
    /// </summary>
    private static long LocalToUnixMs(DateTime local, TimeZoneInfo zone)
    {
        var unspecified = DateTime.SpecifyKind(local, DateTimeKind.Unspecified);
        var offset = zone.IsInvalidTime(unspecified) || zone.IsAmbiguousTime(unspecified)
            ? zone.GetUtcOffset(unspecified.AddHours(-6))
            : zone.GetUtcOffset(unspecified);
        return new DateTimeOffset(unspecified, offset).ToUnixTimeMilliseconds();
    }

    private static long Mod(long value, long modulus) => ((value % modulus) + modulus) % modulus;
}
