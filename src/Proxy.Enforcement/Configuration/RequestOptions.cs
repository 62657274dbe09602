namespace QuotaProxy.Enforcement.Configuration;

/// <summary>What a metered request may hold of the proxy and the vendor: its body's size and how slowly it may send it.</summary>
public sealed record RequestOptions
{
    /// <summary>The largest body a metered request may send: a larger <c>Content-Length</c> gets 413 before anything is charged, and a body that grows past it is cut.</summary>
    public long MaxBodyBytes { get; init; } = 10 * 1024 * 1024;

    /// <summary>The slowest a metered request's body may arrive, after <see cref="MinUploadGracePeriod"/>: a slower upload is cut, so that it cannot hold a MaxInFlight slot.</summary>
    public double MinUploadBytesPerSecond { get; init; } = 240;

    public TimeSpan MinUploadGracePeriod { get; init; } = TimeSpan.FromSeconds(5);
}
