using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using QuotaProxy.Enforcement.Observability;
using Yarp.ReverseProxy.Model;

namespace QuotaProxy.Enforcement.Http;

/// <summary>
/// First in every proxied route's pipeline, metered or not: it opens the request's <see cref="RequestRecord"/>
/// and, once the response has ended, times the request and the vendor's part of it by route and status, and
/// writes the access log line.
/// </summary>
internal sealed class RequestTelemetryMiddleware(RequestDelegate next, QuotaMetrics metrics, AccessLog accessLog)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var record = new RequestRecord(context.GetReverseProxyFeature().Route.Config.RouteId, Stopwatch.GetTimestamp());
        context.Features.Set(record);
        try
        {
            await next(context);
        }
        finally
        {
            var seconds = Stopwatch.GetElapsedTime(record.Started).TotalSeconds;
            var status = context.Response.StatusCode;
            metrics.RequestEnded(record.RouteId, status, seconds);
            var upstream = record.UpstreamSeconds;
            if (upstream is { } vendorSeconds)
            {
                metrics.Upstream(record.RouteId, record.UpstreamAnswered != 0 ? record.UpstreamStatus : QuotaMetrics.NoUpstreamAnswer, vendorSeconds);
            }

            if (accessLog.Enabled)
            {
                accessLog.Write(context, QuotaEnforcementMiddleware.RequestId(context), record, seconds, upstream);
            }
        }
    }
}
