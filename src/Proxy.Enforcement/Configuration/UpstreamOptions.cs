namespace QuotaProxy.Enforcement.Configuration;

public sealed record UpstreamOptions
{
    public UpstreamCredentialOptions? Credential { get; init; }
}
