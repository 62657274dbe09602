using System.Globalization;
using System.Text;
using System.Text.Json;

namespace QuotaProxy.Cli;

/// <summary>The status endpoint's pools as a table: per pool a header line, then a row per tenant with a usage bar.</summary>
public static class StatusTable
{
    private const int BarWidth = 20;

    /// <summary>The bar, its brackets, a space and a percentage of up to three digits.</summary>
    private const int BarColumn = BarWidth + 7;

    public static string Render(IEnumerable<JsonElement> pools, DateTimeOffset now)
    {
        var text = new StringBuilder();
        foreach (var pool in pools)
        {
            var used = pool.GetProperty("used").GetInt64();
            var limit = pool.GetProperty("limit").GetInt64();
            var resets = pool.GetProperty("windowEnd").GetDateTimeOffset();
            var poolRunsOut = RunsOut(pool, now) is { } soon ? $"  runs out in {soon} at this rate" : "";
            text.AppendLine(CultureInfo.InvariantCulture, $"POOL {pool.GetProperty("pool").GetString()} ({pool.GetProperty("window").GetString()})  {Bar(used, limit)} {used}/{limit}  resets in {Until(resets - now)}{poolRunsOut}");
            if (pool.TryGetProperty("closedUntil", out var closed) && closed.ValueKind == JsonValueKind.String)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  closed by the vendor until {closed.GetDateTimeOffset():yyyy-MM-dd HH:mm:ss}Z");
            }

            text.AppendLine(CultureInfo.InvariantCulture, $"  {"TENANT",-24} {"USAGE",-BarColumn} {"USED",10} {"LIMIT",10} {"AVAILABLE",10} {"ALLOCATION",10} {"GUARANTEED",10} {"RUNS OUT",10}");
            foreach (var tenant in pool.GetProperty("tenants").EnumerateArray())
            {
                var tenantUsed = tenant.GetProperty("used").GetInt64();
                var tenantLimit = tenant.GetProperty("effectiveLimit").GetInt64();
                var overridden = tenant.TryGetProperty("override", out var change) && change.ValueKind == JsonValueKind.Object ? " *" : "";
                text.AppendLine(CultureInfo.InvariantCulture, $"  {tenant.GetProperty("tenant").GetString() + overridden,-24} {Bar(tenantUsed, tenantLimit),-BarColumn} {tenantUsed,10} {tenantLimit,10} {tenant.GetProperty("available").GetInt64(),10} {tenant.GetProperty("allocation").GetInt64(),10} {tenant.GetProperty("guaranteed").GetInt64(),10} {RunsOut(tenant, now) ?? "-",10}");
            }
        }

        text.AppendLine("  (* changed at runtime: quotactl allocate; RUNS OUT: at the burn rate of the last minutes, before the window resets)");
        return text.ToString();
    }

    /// <summary><c>[#######.............] 35%</c>: the share of the limit used, capped at the bar's width.</summary>
    public static string Bar(long used, long limit)
    {
        var share = limit <= 0 ? 1 : Math.Clamp((double)used / limit, 0, 1);
        var filled = (int)Math.Round(share * BarWidth, MidpointRounding.AwayFromZero);
        return $"[{new string('#', filled)}{new string('.', BarWidth - filled)}] {(int)Math.Round(share * 100, MidpointRounding.AwayFromZero),3}%";
    }

    /// <summary>How long until the node runs out at its burn rate, when its forecast says it does in this window.</summary>
    private static string? RunsOut(JsonElement node, DateTimeOffset now) =>
        node.TryGetProperty("forecast", out var forecast) && forecast.ValueKind == JsonValueKind.Object
            && forecast.TryGetProperty("exhaustsAt", out var at) && at.ValueKind == JsonValueKind.String
            ? Until(at.GetDateTimeOffset() - now)
            : null;

    private static string Until(TimeSpan left) => left <= TimeSpan.Zero ? "now"
        : left.TotalDays >= 1 ? $"{(int)left.TotalDays}d {left.Hours}h"
        : left.TotalHours >= 1 ? $"{(int)left.TotalHours}h {left.Minutes}m"
        : $"{left.Minutes}m {left.Seconds}s";
}
