using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace QuotaProxy.Enforcement.Observability;

/// <summary>
/// Traces, with OpenTelemetry, when an OTLP endpoint is configured (<c>OTEL_EXPORTER_OTLP_ENDPOINT</c> or
/// <c>OTEL_EXPORTER_OTLP_TRACES_ENDPOINT</c>, as an environment variable or a setting; the SDK's other
/// <c>OTEL_*</c> variables apply as usual). A request's server span holds a span for its identity
/// (<c>quota.identify</c>), one for its decision (<c>quota.decide</c>) and YARP's span for forwarding, with
/// the HTTP client's call to the vendor beneath it; the vendor gets the trace in <c>traceparent</c>. Span
/// attributes carry the route, tenant, pool, cost and outcome: never a key. Without an endpoint nothing
/// listens, and starting a span costs a null check.
/// </summary>
internal static class QuotaTracing
{
    public const string SourceName = "QuotaProxy";

    /// <summary>YARP's own source: its forwarding span.</summary>
    public const string ForwarderSourceName = "Yarp.ReverseProxy";

    public static readonly ActivitySource Source = new(SourceName, typeof(QuotaTracing).Assembly.GetName().Version?.ToString());

    public static bool Configured(IConfiguration configuration) =>
        !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]) || !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]);

    public static void AddQuotaTracing(this IServiceCollection services, IConfiguration configuration)
    {
        if (!Configured(configuration))
        {
            return;
        }

        var builder = services.AddOpenTelemetry();
        if (string.IsNullOrWhiteSpace(configuration["OTEL_SERVICE_NAME"]))
        {
            builder.ConfigureResource(resource => resource.AddService("quota-proxy"));
        }

        builder.WithTracing(tracing => tracing
            .AddSource(SourceName, ForwarderSourceName)
            // Scrapes and probes are not traced: every few seconds, from every Prometheus and kubelet, they would bury the requests.
            .AddAspNetCoreInstrumentation(aspNetCore => aspNetCore.Filter = context => !IsOperational(context.Request.Path))
            .AddHttpClientInstrumentation()
            .AddOtlpExporter());
    }

    private static bool IsOperational(PathString path) =>
        path.StartsWithSegments("/metrics") || path.StartsWithSegments("/healthz") || path.StartsWithSegments("/readyz");
}
