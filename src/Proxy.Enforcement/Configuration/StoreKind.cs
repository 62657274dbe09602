namespace QuotaProxy.Enforcement.Configuration;

public enum StoreKind
{
    InProcess,
    Redis,
}
