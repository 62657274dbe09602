namespace QuotaProxy.Enforcement.Configuration;

public sealed record AdminKeyOptions
{
    public string Name { get; init; } = "";

    public string Sha256 { get; init; } = "";
}
