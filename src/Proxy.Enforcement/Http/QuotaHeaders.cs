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
}
