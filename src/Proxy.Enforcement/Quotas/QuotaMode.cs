namespace QuotaProxy.Enforcement.Quotas;

public enum QuotaMode
{
    /// <summary>Reject what the quota does not allow.</summary>
    Enforce,

    /// <summary>Decide, count and report would-be rejections, but forward anyway.</summary>
    Shadow,
}
