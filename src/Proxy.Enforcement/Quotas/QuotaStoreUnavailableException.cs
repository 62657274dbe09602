namespace QuotaProxy.Enforcement.Quotas;

/// <summary>The store could not decide in time; the request gets the configured outage policy.</summary>
internal sealed class QuotaStoreUnavailableException(string message, Exception? innerException = null)
    : Exception(message, innerException);
