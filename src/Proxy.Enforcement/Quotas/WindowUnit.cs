namespace QuotaProxy.Enforcement.Quotas;

internal enum WindowUnit
{
    Second,
    Minute,
    Hour,
    Day,
    Month,
}
