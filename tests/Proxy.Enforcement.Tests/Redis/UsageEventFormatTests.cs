using QuotaProxy.Enforcement.Redis;
using StackExchange.Redis;

using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Tests.Redis;

/// <summary>How the flusher reads the stream entries that debit.lua and adjust.lua write (their output is checked end to end by the ledger tests).</summary>
public sealed class UsageEventFormatTests
{
    private static StreamEntry Entry(params NameValueEntry[] values) => new("1732312345678-3", values);

    [Fact]
    public void Read_APackedEntry_SplitsNamesByTheirByteLengths_SoSpacesAndUnicodeNeedNoEscaping()
    {
        var tenant = "acme/ré search";
        var route = "quote s";
        var packed = $"1732312345678 -5 refund 1 {System.Text.Encoding.UTF8.GetByteCount(tenant)} {route.Length} {tenant}{route}req 42";

        var e = UsageEventFormat.Read("vendor-daily", "qp:{vendor-daily}:events", Entry(new NameValueEntry("e", packed)));

        Assert.Equal(
            new UsageEvent("qp:{vendor-daily}:events/1732312345678-3", DateTimeOffset.FromUnixTimeMilliseconds(1732312345678), "vendor-daily", tenant, route, -5, UsageKind.Refund, true, "req 42"),
            e);
    }

    [Fact]
    public void Read_APackedEntryWithoutARequestId_HasNone()
    {
        var e = UsageEventFormat.Read("p", "k", Entry(new NameValueEntry("e", "1 3 overage 0 4 1 prodr")));

        Assert.Equal((3L, UsageKind.Overage, false, "prod", "r", (string?)null), (e.Credits, e.Kind, e.Shadow, e.Tenant, e.Route, e.RequestId));
    }

    [Fact]
    public void Read_AnEntryOfAnEarlierVersion_WithOneFieldPerValue_IsStillRead()
    {
        var e = UsageEventFormat.Read("p", "k", Entry(new NameValueEntry("t", 1732312345678), new("n", "prod"), new("r", "quotes"), new("q", "req-1"), new("c", 2), new("k", "adjustment"), new("s", "0")));

        Assert.Equal(new UsageEvent("k/1732312345678-3", DateTimeOffset.FromUnixTimeMilliseconds(1732312345678), "p", "prod", "quotes", 2, UsageKind.Adjustment, false, "req-1"), e);
    }

    [Theory]
    [InlineData("1732312345678 1 debit 0 4 7 prod")] // lengths longer than what follows
    [InlineData("1732312345678 x debit 0 4 7 prodmetered")] // credits not a number
    [InlineData("1732312345678 1 debit")] // cut short
    public void Read_AMalformedPackedEntry_FailsNamingTheEvent(string packed)
    {
        var ex = Assert.Throws<FormatException>(() => UsageEventFormat.Read("p", "k", Entry(new NameValueEntry("e", packed))));

        Assert.StartsWith("usage event k/1732312345678-3 is not in the packed form", ex.Message);
    }
}
