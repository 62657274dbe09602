namespace QuotaProxy.Enforcement.Quotas;

/// <summary>The store could not decide in time; the request gets the configured outage policy.</summary>
internal sealed class QuotaStoreUnavailableException(string message, Exception? innerException = null)
    : Exception(message, innerException)
{
    /// <summary>
    /// The decision may have debited and its answer is lost for good (the replicas did not confirm it, or the
    /// connection died with it); with the ledger on the store finds it by its usage event and gives it back,
    /// without one it stays counted as used.
    /// </summary>
    public bool MayHaveDebited { get; init; }
}
