namespace QuotaProxy.Enforcement.Quotas;

/// <summary>A priority level among siblings, Σ (Allocation − Guaranteed) of the siblings at it, and the parent's aggregate field for it.</summary>
internal readonly record struct PriorityLevel(int Priority, long AllocationAboveGuaranteed, string Field);
