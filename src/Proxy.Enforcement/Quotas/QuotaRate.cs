using System.Globalization;

namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// A rate on a node, <c>"10/s"</c>, <c>"600/m"</c>, <c>"100/h"</c> or <c>"5000/d"</c>, enforced by GCRA (the
/// generic cell rate algorithm): each credit moves the node's theoretical arrival time (TAT) on by one
/// emission interval, and a cost c is admitted at time t iff max(TAT, t) + c × interval − t ≤ Burst × interval.
/// Unlike a counter per fixed window, GCRA has no boundary to straddle: in any span of one unit at most
/// Count + Burst − 1 credits get through, so with the default Burst of 1, never more than Count.
/// </summary>
internal sealed record QuotaRate(long Count, long UnitMicros, long Burst)
{
    /// <summary>µs per credit, rounded up so the rate is never exceeded (7/s is one credit per 142,858 µs).</summary>
    public long IntervalMicros { get; } = (UnitMicros + Count - 1) / Count;

    /// <summary>Burst × interval: how far ahead of the clock the TAT may run.</summary>
    public long CapacityMicros => Burst * IntervalMicros;

    public override string ToString() => $"{Count}/{UnitName(UnitMicros)}";

    /// <summary>Parses <c>N/s|m|h|d</c> with N a positive integer of at most one per µs.</summary>
    public static bool TryParse(string? text, long burst, out QuotaRate? rate)
    {
        rate = null;
        var slash = text?.IndexOf('/') ?? -1;
        if (slash <= 0 || burst < 1)
        {
            return false;
        }

        var unitMicros = text![(slash + 1)..] switch
        {
            "s" => 1_000_000L,
            "m" => 60_000_000L,
            "h" => 3_600_000_000L,
            "d" => 86_400_000_000L,
            _ => 0L,
        };
        if (unitMicros == 0
            || !long.TryParse(text.AsSpan(0, slash), NumberStyles.None, CultureInfo.InvariantCulture, out var count)
            || count < 1
            || count > unitMicros)
        {
            return false;
        }

        rate = new QuotaRate(count, unitMicros, burst);
        return true;
    }

    private static string UnitName(long unitMicros) => unitMicros switch
    {
        1_000_000L => "s",
        60_000_000L => "m",
        3_600_000_000L => "h",
        _ => "d",
    };
}
