namespace QuotaProxy.Enforcement.Observability;

/// <summary>The <c>operation</c> label of the store metrics.</summary>
internal static class StoreOperation
{
    public const string Debit = "debit";
    public const string Adjust = "adjust";
    public const string Release = "release";
    public const string Close = "close";
    public const string Read = "read";
    public const string Peek = "peek";
    public const string Lease = "lease";
}
