namespace QuotaProxy.Enforcement.Configuration;

/// <summary>One webhook: a URL that receives each notification as a signed JSON POST.</summary>
public sealed record WebhookOptions
{
    /// <summary>Its name in metrics and logs.</summary>
    public string Name { get; init; } = "";

    public string Url { get; init; } = "";

    /// <summary>
    /// The environment variable holding the HMAC-SHA256 key that signs each body
    /// (<c>X-QuotaProxy-Signature: t=&lt;unix seconds&gt;,v1=&lt;hex of HMAC(key, t + "." + body)&gt;</c>).
    /// </summary>
    public string SecretEnvironmentVariable { get; init; } = "";
}
