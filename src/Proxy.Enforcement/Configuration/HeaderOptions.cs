namespace QuotaProxy.Enforcement.Configuration;

public sealed record HeaderOptions
{
    /// <summary>Send <c>X-RateLimit-Limit/Remaining/Used/Reset</c> next to the IETF <c>RateLimit</c> pair.</summary>
    public bool Legacy { get; init; } = true;

    /// <summary>
    /// The header a client names a request with so that its retries are charged once per window
    /// (<c>Idempotency-Key</c>; set it to <c>X-Request-Id</c> to use request ids). Empty switches it off.
    /// </summary>
    public string IdempotencyKey { get; init; } = "Idempotency-Key";
}
