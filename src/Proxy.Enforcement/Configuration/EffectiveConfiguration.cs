using System.Globalization;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Configuration;

/// <summary>What <c>QuotaProxy check</c> prints: the configuration in force, as the proxy understood it.</summary>
public static class EffectiveConfiguration
{
    /// <summary>The effective model of a configuration that built: the store, the ledger, the admin API, and each pool with its tenant tree.</summary>
    public static string Describe(IServiceProvider services)
    {
        var live = services.GetRequiredService<LiveConfiguration>();
        var options = live.Options;
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"configuration OK: store {options.Store.Kind}, ledger {(options.Ledger.Enabled ? "on" : "off")}, admin API {options.Admin.Url ?? "off"}");
        foreach (var pool in live.Model.Pools.Values.Where(pool => options.Pools.ContainsKey(pool.Name)).OrderBy(pool => pool.Name, StringComparer.Ordinal))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"pool {pool.Name}: {pool.Limit} credits per {pool.Window.Text} ({pool.TimeZone.Id}), vendor closure at most {pool.MaxClosure}");
            foreach (var node in pool.Nodes.Values.OrderBy(node => node.Path, StringComparer.Ordinal))
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  {new string(' ', 2 * (node.Depth - 1))}{node.Path}: limit {node.EffectiveLimit}, allocation {node.Allocation}, guaranteed {node.Guaranteed}{(node.Priority == QuotaNode.LowestPriority ? "" : $", priority {node.Priority}")}{(node.Mode == QuotaMode.Shadow ? ", shadow" : "")}");
            }
        }

        return text.ToString();
    }
}
