using System.Runtime.CompilerServices;
using QuotaProxy.Enforcement.Configuration;

namespace QuotaProxy.Enforcement.Admin;

/// <summary>The admin keys of one configuration, by their SHA-256 (lower-case hex) → the key's name: built once per reload.</summary>
internal static class AdminKeys
{
    private static readonly ConditionalWeakTable<AdminOptions, Dictionary<string, string>> ByOptions = [];

    public static Dictionary<string, string> Of(AdminOptions admin) =>
        ByOptions.GetValue(admin, static options => options.Keys.ToDictionary(key => key.Sha256.ToLowerInvariant(), key => key.Name, StringComparer.Ordinal));
}
