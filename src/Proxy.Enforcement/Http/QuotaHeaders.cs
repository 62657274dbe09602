namespace QuotaProxy.Enforcement.Http;

/// <summary>The proxy's own headers on admitted responses, beyond the rate-limit set.</summary>
internal static class QuotaHeaders
{
    /// <summary>A node on the caller's path is above its SoftLimit: <c>soft-limit; pool="p"; node="test"; soft-limit=50</c>.</summary>
    public const string Warning = "X-Quota-Warning";

    /// <summary>Credits of this request above a Limit on the path (admitted as overage).</summary>
    public const string Overage = "X-Quota-Overage";

    /// <summary>Shadow mode let through what enforcement would have rejected: <c>would-reject; limited-by=tenant; node="dev"</c>.</summary>
    public const string Shadow = "X-Quota-Shadow";

    /// <summary>
    /// On every metered response: the credits charged for it as it was answered (0 when it was not admitted,
    /// or a replay charged nothing). A refund or a settlement after the vendor answered changes the final
    /// figure, which the admin API gives by request id (<c>GET /admin/v1/usage/requests/{requestId}</c>).
    /// </summary>
    public const string Charged = "X-Quota-Charged";

    /// <summary>
    /// A node on the caller's path is forecast to run out before its window ends, at the rate it is being
    /// spent: <c>exhausts-in=5400; pool="p"; node="test"</c> (seconds; the soonest such node).
    /// </summary>
    public const string Forecast = "X-Quota-Forecast";

    /// <summary>The header's value for small charges, made once.</summary>
    public static string ChargedValue(long credits) =>
        credits is >= 0 and < 64 ? SmallCharges[credits] : credits.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static readonly string[] SmallCharges = [.. Enumerable.Range(0, 64).Select(n => n.ToString(System.Globalization.CultureInfo.InvariantCulture))];
}
