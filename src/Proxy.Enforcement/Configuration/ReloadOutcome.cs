namespace QuotaProxy.Enforcement.Configuration;

/// <summary>What a reload did: put a new configuration in force, found nothing of ours changed, or refused it with every error.</summary>
internal sealed record ReloadOutcome(bool Changed, IReadOnlyList<string> Errors);
