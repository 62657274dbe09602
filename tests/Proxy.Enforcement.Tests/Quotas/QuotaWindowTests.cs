using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Tests.Quotas;

public sealed class QuotaWindowTests
{
    private static readonly TimeZoneInfo Utc = TimeZoneInfo.Utc;
    private static readonly TimeZoneInfo NewYork = TimeZoneInfo.FindSystemTimeZoneById("America/New_York");

    private static QuotaWindow Window(string text) => QuotaWindow.TryParse(text, out var w) ? w : throw new ArgumentException(text);

    private static DateTimeOffset Utc_(string iso) => DateTimeOffset.Parse(iso, System.Globalization.CultureInfo.InvariantCulture);

    [Theory]
    [InlineData("1s", "2026-11-22T10:15:42.345Z", "2026-11-22T10:15:42Z", "2026-11-22T10:15:43Z")]
    [InlineData("1m", "2026-11-22T10:15:42.345Z", "2026-11-22T10:15:00Z", "2026-11-22T10:16:00Z")]
    [InlineData("1h", "2026-11-22T10:15:42.345Z", "2026-11-22T10:00:00Z", "2026-11-22T11:00:00Z")]
    [InlineData("1d", "2026-11-22T10:15:42.345Z", "2026-11-22T00:00:00Z", "2026-11-23T00:00:00Z")]
    [InlineData("1mo", "2026-02-14T10:15:42.345Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z")]
    [InlineData("1mo", "2026-12-31T23:59:59.999Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z")]
    public void Locate_Utc_AlignsOnTheCalendar(string window, string instant, string start, string end)
    {
        var bounds = Window(window).Locate(Utc_(instant), Utc);

        Assert.Equal(Utc_(start), bounds.Start);
        Assert.Equal(Utc_(end), bounds.End);
    }

    [Fact]
    public void Locate_DayInNewYork_StartsAtLocalMidnight()
    {
        // 2026-11-22 23:30 EST is 04:30 UTC the next day.
        var bounds = Window("1d").Locate(Utc_("2026-11-23T04:30:00Z"), NewYork);

        Assert.Equal(Utc_("2026-11-22T05:00:00Z"), bounds.Start);
        Assert.Equal(Utc_("2026-11-23T05:00:00Z"), bounds.End);
    }

    [Fact]
    public void Locate_SpringForwardDayInNewYork_Lasts23Hours()
    {
        // 2026-03-08: clocks jump from 02:00 EST to 03:00 EDT.
        var bounds = Window("1d").Locate(Utc_("2026-03-08T12:00:00Z"), NewYork);

        Assert.Equal(Utc_("2026-03-08T05:00:00Z"), bounds.Start);
        Assert.Equal(Utc_("2026-03-09T04:00:00Z"), bounds.End);
        Assert.Equal(TimeSpan.FromHours(23), bounds.Length);
    }

    [Fact]
    public void Locate_FallBackDayInNewYork_Lasts25Hours()
    {
        // 2026-11-01: clocks fall back from 02:00 EDT to 01:00 EST; 01:30 happens twice.
        var window = Window("1d");
        var first = window.Locate(Utc_("2026-11-01T05:30:00Z"), NewYork);
        var second = window.Locate(Utc_("2026-11-01T06:30:00Z"), NewYork);

        Assert.Equal(Utc_("2026-11-01T04:00:00Z"), first.Start);
        Assert.Equal(Utc_("2026-11-02T05:00:00Z"), first.End);
        Assert.Equal(TimeSpan.FromHours(25), first.Length);
        Assert.Equal(first, second);
    }

    [Fact]
    public void Locate_DayWhoseMidnightIsSkipped_StartsAtTheJump()
    {
        // America/Santiago, 2026-09-06: clocks jump from 24:00 (-04) to 01:00 (-03); local midnight never happens.
        var santiago = TimeZoneInfo.FindSystemTimeZoneById("America/Santiago");
        var bounds = Window("1d").Locate(Utc_("2026-09-06T12:00:00Z"), santiago);

        Assert.Equal(Utc_("2026-09-06T04:00:00Z"), bounds.Start);
        Assert.Equal(Utc_("2026-09-07T03:00:00Z"), bounds.End);
        Assert.Equal(TimeSpan.FromHours(23), bounds.Length);
    }

    [Fact]
    public void Locate_MonthInNewYork_StartsOnTheFirstAtLocalMidnight()
    {
        var bounds = Window("1mo").Locate(Utc_("2026-11-01T03:00:00Z"), NewYork);

        Assert.Equal(Utc_("2026-10-01T04:00:00Z"), bounds.Start);
        Assert.Equal(Utc_("2026-11-01T04:00:00Z"), bounds.End);
    }

    [Fact]
    public void Locate_HourInIndia_AlignsOnTheHalfHourOffset()
    {
        var kolkata = TimeZoneInfo.FindSystemTimeZoneById("Asia/Kolkata");
        var bounds = Window("1h").Locate(Utc_("2026-11-22T10:15:00Z"), kolkata);

        Assert.Equal(Utc_("2026-11-22T09:30:00Z"), bounds.Start);
        Assert.Equal(Utc_("2026-11-22T10:30:00Z"), bounds.End);
    }

    [Theory]
    [InlineData("")]
    [InlineData("2d")]
    [InlineData("1w")]
    [InlineData("1M")]
    [InlineData("day")]
    public void TryParse_Unknown_Fails(string text) => Assert.False(QuotaWindow.TryParse(text, out _));
}
