namespace QuotaProxy.Enforcement.Configuration;

public sealed record UpstreamCredentialOptions
{
    public string Header { get; init; } = "";

    /// <summary>The secret itself (prefer <see cref="EnvironmentVariable"/> so it never sits in a file).</summary>
    public string? Value { get; init; }

    /// <summary>Name of an environment variable that holds the secret.</summary>
    public string? EnvironmentVariable { get; init; }
}
