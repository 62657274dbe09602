using System.Buffers.Text;
using System.Text;
using StackExchange.Redis;

using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// How a usage event sits in a pool's Redis stream. debit.lua and adjust.lua write one field, <c>e</c>:
/// <c>'&lt;time ms&gt; &lt;credits&gt; &lt;kind&gt; &lt;shadow 1|0&gt; &lt;#tenant&gt; &lt;#route&gt; &lt;tenant&gt;&lt;route&gt;&lt;request id&gt;'</c>,
/// where <c>#x</c> is x's length in UTF-8 bytes, so names and request ids need no escaping. One value per
/// entry instead of seven field/value pairs halves what Redis sends and what the flusher parses. Entries
/// written by earlier versions (fields t, n, r, q, c, k, s) are still read, so an upgrade with events
/// waiting in the stream loses none.
/// </summary>
internal static class UsageEventFormat
{
    public const string PackedField = "e";

    public static UsageEvent Read(string pool, RedisKey stream, StreamEntry entry)
    {
        var eventId = $"{stream}/{entry.Id}";
        var packed = entry[PackedField];
        return packed.IsNull ? ReadFields(pool, eventId, entry) : ReadPacked(pool, eventId, (ReadOnlyMemory<byte>)packed);
    }

    /// <summary>An event packed as debit.lua packs its own (for the events C# writes: a credit lease's spends).</summary>
    public static string Pack(long atMs, long credits, UsageKind kind, bool shadow, string tenant, string route, string? requestId) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{atMs} {credits} {UsageKinds.Name(kind)} {(shadow ? 1 : 0)} {Encoding.UTF8.GetByteCount(tenant)} {Encoding.UTF8.GetByteCount(route)} {tenant}{route}{requestId}");

    private static UsageEvent ReadPacked(string pool, string eventId, ReadOnlyMemory<byte> memory)
    {
        var rest = memory.Span;
        var time = NextNumber(ref rest, eventId);
        var credits = NextNumber(ref rest, eventId);
        var kind = ParseKind(NextToken(ref rest, eventId));
        var shadow = NextNumber(ref rest, eventId) == 1;
        var tenantLength = (int)NextNumber(ref rest, eventId);
        var routeLength = (int)NextNumber(ref rest, eventId);
        if (tenantLength < 0 || routeLength < 0 || tenantLength + routeLength > rest.Length)
        {
            throw Malformed(eventId);
        }

        var requestId = rest[(tenantLength + routeLength)..];
        return new UsageEvent(
            eventId,
            DateTimeOffset.FromUnixTimeMilliseconds(time),
            pool,
            Encoding.UTF8.GetString(rest[..tenantLength]),
            Encoding.UTF8.GetString(rest.Slice(tenantLength, routeLength)),
            credits,
            kind,
            shadow,
            requestId.IsEmpty ? null : Encoding.UTF8.GetString(requestId));
    }

    private static UsageEvent ReadFields(string pool, string eventId, StreamEntry entry)
    {
        var requestId = (string?)entry["q"];
        return new UsageEvent(
            eventId,
            DateTimeOffset.FromUnixTimeMilliseconds((long)entry["t"]),
            pool,
            (string)entry["n"]!,
            (string)entry["r"]!,
            (long)entry["c"],
            ParseKind((string?)entry["k"]),
            (string?)entry["s"] == "1",
            string.IsNullOrEmpty(requestId) ? null : requestId);
    }

    private static UsageKind ParseKind(ReadOnlySpan<byte> kind) =>
        kind.SequenceEqual("overage"u8) ? UsageKind.Overage
        : kind.SequenceEqual("refund"u8) ? UsageKind.Refund
        : kind.SequenceEqual("adjustment"u8) ? UsageKind.Adjustment
        : kind.SequenceEqual("replay"u8) ? UsageKind.Replay
        : kind.SequenceEqual("reset"u8) ? UsageKind.Reset
        : kind.SequenceEqual("lease"u8) ? UsageKind.Lease
        : UsageKind.Debit;

    private static UsageKind ParseKind(string? kind) => kind switch
    {
        "overage" => UsageKind.Overage,
        "refund" => UsageKind.Refund,
        "adjustment" => UsageKind.Adjustment,
        "replay" => UsageKind.Replay,
        "reset" => UsageKind.Reset,
        "lease" => UsageKind.Lease,
        _ => UsageKind.Debit,
    };

    /// <summary>The bytes up to the next space, which is consumed with them.</summary>
    private static ReadOnlySpan<byte> NextToken(ref ReadOnlySpan<byte> rest, string eventId)
    {
        var space = rest.IndexOf((byte)' ');
        if (space < 0)
        {
            throw Malformed(eventId);
        }

        var token = rest[..space];
        rest = rest[(space + 1)..];
        return token;
    }

    private static long NextNumber(ref ReadOnlySpan<byte> rest, string eventId)
    {
        var token = NextToken(ref rest, eventId);
        return Utf8Parser.TryParse(token, out long value, out var consumed) && consumed == token.Length ? value : throw Malformed(eventId);
    }

    private static FormatException Malformed(string eventId) => new($"usage event {eventId} is not in the packed form '<time> <credits> <kind> <shadow> <#tenant> <#route> <tenant><route><request id>'");
}
