namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// What <see cref="TreeAdmission.Evaluate"/> found; the store adds the window and the clock.
/// <paramref name="SmallestRoom"/> is before any debit: the remaining after one is SmallestRoom − cost.
/// </summary>
internal readonly record struct TreeOutcome(
    bool Admitted,
    QuotaLimitedBy LimitedBy,
    QuotaNode? LimitingNode,
    long SmallestRoom,
    long OverageCredits,
    QuotaNode? SoftLimitNode,
    bool SoftLimitCrossed,
    bool Shadow,
    long RetryAfterMicros,
    bool Replayed = false);
