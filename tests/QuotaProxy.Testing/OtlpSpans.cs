using System.Text;

namespace QuotaProxy.Testing;

/// <summary>One span as an OTLP exporter sent it: ids in hex, its name, kind and string, int and bool attributes.</summary>
public sealed record OtlpSpan(string Scope, string TraceId, string SpanId, string ParentSpanId, string Name, int Kind, IReadOnlyDictionary<string, string> Attributes)
{
    /// <summary>The span kinds of OTLP's <c>Span.SpanKind</c>.</summary>
    public const int Internal = 1, Server = 2, Client = 3;
}

/// <summary>
/// Reads the spans out of an OTLP/HTTP protobuf export (<c>ExportTraceServiceRequest</c>) with nothing but
/// the protobuf wire format, so that the test reads what the exporter put on the wire, not what an SDK
/// object said. Field numbers are those of opentelemetry-proto's trace.proto and common.proto.
/// </summary>
public static class OtlpSpans
{
    public static IEnumerable<OtlpSpan> Read(byte[] export)
    {
        foreach (var resourceSpans in Fields(export).Where(f => f.Number == 1))
        {
            foreach (var scopeSpans in Fields(resourceSpans.Bytes).Where(f => f.Number == 2))
            {
                var scope = Fields(scopeSpans.Bytes).Where(f => f.Number == 1).Select(f => Text(Fields(f.Bytes).FirstOrDefault(n => n.Number == 1).Bytes)).FirstOrDefault() ?? "";
                foreach (var span in Fields(scopeSpans.Bytes).Where(f => f.Number == 2))
                {
                    yield return ReadSpan(scope, span.Bytes);
                }
            }
        }
    }

    private static OtlpSpan ReadSpan(string scope, byte[] span)
    {
        string traceId = "", spanId = "", parent = "", name = "";
        var kind = 0;
        var attributes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var field in Fields(span))
        {
            switch (field.Number)
            {
                case 1: traceId = Convert.ToHexStringLower(field.Bytes); break;
                case 2: spanId = Convert.ToHexStringLower(field.Bytes); break;
                case 4: parent = Convert.ToHexStringLower(field.Bytes); break;
                case 5: name = Text(field.Bytes); break;
                case 6: kind = (int)field.Value; break;
                case 9:
                    var key = "";
                    var value = "";
                    foreach (var part in Fields(field.Bytes))
                    {
                        if (part.Number == 1)
                        {
                            key = Text(part.Bytes);
                        }
                        else if (part.Number == 2)
                        {
                            // AnyValue: 1 string, 2 bool, 3 int64.
                            var any = Fields(part.Bytes).FirstOrDefault();
                            value = any.Number switch
                            {
                                1 => Text(any.Bytes),
                                2 => any.Value != 0 ? "true" : "false",
                                3 => ((long)any.Value).ToString(System.Globalization.CultureInfo.InvariantCulture),
                                _ => "",
                            };
                        }
                    }

                    attributes[key] = value;
                    break;
            }
        }

        return new OtlpSpan(scope, traceId, spanId, parent, name, kind, attributes);
    }

    private static string Text(byte[]? bytes) => bytes is null ? "" : Encoding.UTF8.GetString(bytes);

    private readonly record struct Field(int Number, ulong Value, byte[] Bytes);

    private static List<Field> Fields(byte[] message)
    {
        var fields = new List<Field>();
        var position = 0;
        while (position < message.Length)
        {
            var tag = Varint(message, ref position);
            var number = (int)(tag >> 3);
            switch ((int)(tag & 7))
            {
                case 0:
                    fields.Add(new Field(number, Varint(message, ref position), []));
                    break;
                case 1:
                    fields.Add(new Field(number, BitConverter.ToUInt64(message, position), []));
                    position += 8;
                    break;
                case 2:
                    var length = (int)Varint(message, ref position);
                    fields.Add(new Field(number, 0, message[position..(position + length)]));
                    position += length;
                    break;
                case 5:
                    fields.Add(new Field(number, BitConverter.ToUInt32(message, position), []));
                    position += 4;
                    break;
                default:
                    throw new InvalidDataException($"protobuf wire type {tag & 7} at byte {position}: not an OTLP message");
            }
        }

        return fields;
    }

    private static ulong Varint(byte[] message, ref int position)
    {
        ulong value = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = message[position++];
            value |= (ulong)(b & 0x7f) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }
    }
}
