using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace QuotaProxy.Enforcement.Monitoring;

/// <summary>The body of <c>/healthz</c> and <c>/readyz</c>: <c>{"status":"Healthy","checks":{"store":{"status":…,"description":…}}}</c>.</summary>
internal static class HealthResponse
{
    public static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json";
        var checks = report.Entries.ToDictionary(
            entry => entry.Key,
            entry => new { status = entry.Value.Status.ToString(), description = entry.Value.Description });
        return context.Response.WriteAsync(JsonSerializer.Serialize(new { status = report.Status.ToString(), checks }));
    }
}
