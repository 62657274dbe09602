using System.Globalization;
using Yarp.ReverseProxy.Forwarder;

namespace QuotaProxy.Enforcement.Pricing;

/// <summary>
/// When a route gives its credits back (<c>"Quota.RefundOn": "5xx, 429, transport, timeout"</c>): status
/// codes, whole classes (<c>4xx</c>, <c>5xx</c>), <c>transport</c> (the vendor could not be reached or broke
/// the connection) and <c>timeout</c> (the vendor did not answer in time). The client going away is not a
/// refund: the vendor may well have done the work.
/// </summary>
internal sealed class RefundPolicy
{
    public const string Key = "Quota.RefundOn";

    public static readonly RefundPolicy None = new([], [], transport: false, timeout: false);

    private readonly HashSet<int> _codes;
    private readonly HashSet<int> _classes;
    private readonly bool _transport;
    private readonly bool _timeout;

    private RefundPolicy(HashSet<int> codes, HashSet<int> classes, bool transport, bool timeout)
    {
        (_codes, _classes, _transport, _timeout) = (codes, classes, transport, timeout);
    }

    public bool IsNone => _codes.Count == 0 && _classes.Count == 0 && !_transport && !_timeout;

    /// <summary>Whether a response that ended with <paramref name="status"/> (and YARP's <paramref name="error"/>, if any) is refunded.</summary>
    public bool Refunds(int status, ForwarderError error) =>
        (_timeout && error == ForwarderError.RequestTimedOut)
        || (_transport && error is ForwarderError.Request or ForwarderError.ResponseHeaders or ForwarderError.RequestBodyDestination
            or ForwarderError.ResponseBodyDestination or ForwarderError.NoAvailableDestinations)
        || _codes.Contains(status)
        || _classes.Contains(status / 100);

    /// <summary>Parses the metadata value; every token it does not understand is returned in <paramref name="invalid"/>.</summary>
    public static RefundPolicy Parse(string? text, out List<string> invalid)
    {
        invalid = [];
        if (string.IsNullOrWhiteSpace(text))
        {
            return None;
        }

        HashSet<int> codes = [], classes = [];
        bool transport = false, timeout = false;
        foreach (var token in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            switch (token.ToLowerInvariant())
            {
                case "transport":
                    transport = true;
                    break;
                case "timeout":
                    timeout = true;
                    break;
                case ['4' or '5', 'x', 'x'] lower:
                    classes.Add(lower[0] - '0');
                    break;
                default:
                    if (token.Length == 3 && int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out var code) && code is >= 100 and <= 599)
                    {
                        codes.Add(code);
                    }
                    else
                    {
                        invalid.Add(token);
                    }

                    break;
            }
        }

        return new RefundPolicy(codes, classes, transport, timeout);
    }
}
