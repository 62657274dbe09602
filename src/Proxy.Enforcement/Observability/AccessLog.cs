using System.Buffers;
using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;

namespace QuotaProxy.Enforcement.Observability;

/// <summary>
/// The JSON access log (<c>Quota:AccessLog</c>): one line per request through the proxy's routes, in the
/// shape Envoy's and Kong's JSON logs have. The request path only queues the line; a background writer
/// appends it, so a slow disk never slows a request. When the queue is full the line is dropped and counted
/// (<c>quota_proxy_access_log_dropped_total</c>), never waited for. A line holds the route, the tenant,
/// the path without its query, the status, credits and times: no key, no header, no query string.
/// </summary>
/// <param name="path">The file lines are appended to; null, standard output.</param>
internal sealed class AccessLog(bool enabled, string? path, QuotaMetrics metrics) : BackgroundService
{
    private const int Capacity = 10_000;

    /// <summary>The longest path a line carries; a longer one is cut there.</summary>
    internal const int MaxPathLength = 512;

    private readonly Channel<Line> _lines = Channel.CreateBounded<Line>(new BoundedChannelOptions(Capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });

    public bool Enabled => enabled;

    /// <param name="requestId">The id the ledger stores for the request.</param>
    /// <param name="upstreamSeconds">The vendor's time (<see cref="RequestRecord.UpstreamSeconds"/>), taken as the response ended.</param>
    public void Write(HttpContext context, string requestId, RequestRecord record, double seconds, double? upstreamSeconds)
    {
        var path = context.Request.Path.Value ?? "";
        var line = new Line(
            DateTimeOffset.UtcNow,
            requestId,
            Activity.Current?.TraceId.ToHexString(),
            context.Request.Method,
            path.Length > MaxPathLength ? path[..MaxPathLength] : path,
            record,
            context.Response.StatusCode,
            seconds,
            upstreamSeconds);
        if (!_lines.Writer.TryWrite(line))
        {
            metrics.AccessLogDropped();
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await using var output = path is { Length: > 0 }
            ? new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete)
            : Console.OpenStandardOutput();
        var buffer = new ArrayBufferWriter<byte>(4096);
        await using var json = new Utf8JsonWriter(buffer);
        try
        {
            while (await _lines.Reader.WaitToReadAsync(stoppingToken))
            {
                await DrainAsync(output, buffer, json, CancellationToken.None);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: what the last requests queued is still written.
            await DrainAsync(output, buffer, json, CancellationToken.None);
        }
    }

    private async Task DrainAsync(Stream output, ArrayBufferWriter<byte> buffer, Utf8JsonWriter json, CancellationToken cancellationToken)
    {
        while (_lines.Reader.TryRead(out var line))
        {
            json.Reset();
            line.WriteTo(json);
            json.Flush();
            buffer.Write("\n"u8);
            if (buffer.WrittenCount > 32 * 1024)
            {
                await output.WriteAsync(buffer.WrittenMemory, cancellationToken);
                buffer.ResetWrittenCount();
            }
        }

        await output.WriteAsync(buffer.WrittenMemory, cancellationToken);
        buffer.ResetWrittenCount();
        await output.FlushAsync(cancellationToken);
    }

    private readonly record struct Line(
        DateTimeOffset Time, string RequestId, string? TraceId, string Method, string Path, RequestRecord Record, int Status, double Seconds, double? UpstreamSeconds)
    {
        public void WriteTo(Utf8JsonWriter json)
        {
            json.WriteStartObject();
            json.WriteString("time", Time);
            json.WriteString("requestId", RequestId);
            if (TraceId is not null)
            {
                json.WriteString("traceId", TraceId);
            }

            json.WriteString("method", Method);
            json.WriteString("path", Path);
            json.WriteString("route", Record.RouteId);
            json.WriteNumber("status", Status);
            if (Record.Tenant is { } tenant)
            {
                json.WriteString("tenant", tenant);
            }

            if (Record.Outcome is { } outcome)
            {
                json.WriteString("outcome", QuotaMetrics.OutcomeLabels[outcome]);
            }

            if (Record.Charged is { } charged)
            {
                json.WriteNumber("credits", charged);
            }

            if (Record.DecisionSeconds is { } decision)
            {
                json.WriteNumber("decisionMs", Math.Round(decision * 1000, 3));
            }

            if (UpstreamSeconds is { } upstream)
            {
                json.WriteNumber("upstreamMs", Math.Round(upstream * 1000, 3));
                json.WriteNumber("upstreamStatus", Record.UpstreamStatus);
            }

            json.WriteNumber("durationMs", Math.Round(Seconds * 1000, 3));
            json.WriteEndObject();
        }
    }
}
