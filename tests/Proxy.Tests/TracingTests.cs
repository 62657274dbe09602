using System.Net;
using QuotaProxy.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Settings;
using static QuotaProxy.Tests.TelemetryTests;

namespace QuotaProxy.Tests;

/// <summary>
/// Runs alone: a tracer provider listens to ASP.NET Core and HttpClient activities process-wide, so every
/// other test's proxy and vendor would be traced, and exported here, while it runs.
/// </summary>
[CollectionDefinition(nameof(TracingTests), DisableParallelization = true)]
public sealed class TracingCollection;

/// <summary>Traces exported by OTLP/HTTP to a local receiver, read off the wire span by span.</summary>
[Collection(nameof(TracingTests))]
public sealed class TracingTests
{
    [Fact]
    public async Task Traces_IdentifyDecideAndForward_AreSpansOfTheRequest_ExportedByOtlp_InTheCallersTrace_AndCarryNoKey()
    {
        using var vendor = new VendorServer();
        using var collector = WireMockServer.Start(new WireMockServerSettings { Urls = [$"http://127.0.0.1:{LoopbackPorts.Free()}"] });
        collector.Given(Request.Create().WithPath("/v1/traces").UsingPost()).RespondWith(Response.Create().WithStatusCode(200));
        var proxy = await ProxyInstance.StartAsync(Config(vendor)
            .Set("OTEL_EXPORTER_OTLP_ENDPOINT", collector.Urls[0])
            .Set("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"));
        const string TraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
        try
        {
            // A caller that is part of a trace already: its client sends the traceparent as it is.
            using (var caller = new HttpClient(new SocketsHttpHandler { ActivityHeadersPropagator = null }) { BaseAddress = proxy.Address })
            using (var request = new HttpRequestMessage(HttpMethod.Get, "/quotes/a"))
            {
                request.Headers.Add("X-Api-Key", ProdKey);
                request.Headers.Add("traceparent", $"00-{TraceId}-00f067aa0ba902b7-01");
                Assert.Equal(HttpStatusCode.OK, (await caller.SendAsync(request)).StatusCode);
            }

            Assert.Equal(HttpStatusCode.OK, await proxy.StatusAsync(ProdKey, "/quotes/a"));
            Assert.Equal(HttpStatusCode.TooManyRequests, await proxy.StatusAsync(ProdKey, "/quotes/a"));
            Assert.Equal(HttpStatusCode.OK, await proxy.StatusAsync(null, "/metrics"));
        }
        finally
        {
            // Stopping flushes what the batch exporter holds.
            await proxy.DisposeAsync();
        }

        var exports = collector.LogEntries.Select(entry => entry.RequestMessage!.BodyAsBytes!).ToList();
        Assert.NotEmpty(exports);
        Assert.All(collector.LogEntries, entry => Assert.Equal("application/x-protobuf", entry.RequestMessage!.Headers!["Content-Type"].Single()));
        var spans = exports.SelectMany(OtlpSpans.Read).ToList();

        // The first request, in the caller's trace: the server span holds YARP's span for the route's pipeline,
        // which holds identify, decide and the forwarding (the HTTP client's call to the vendor).
        var trace = spans.Where(span => span.TraceId == TraceId).ToList();
        var server = Assert.Single(trace, span => span.Scope == "Microsoft.AspNetCore" && span.Name == "GET /quotes/{**rest}");
        Assert.Equal((OtlpSpan.Server, "00f067aa0ba902b7"), (server.Kind, server.ParentSpanId));
        var pipeline = Assert.Single(trace, span => span.Scope == "Yarp.ReverseProxy");
        Assert.Equal(server.SpanId, pipeline.ParentSpanId);
        var identify = Assert.Single(trace, span => span.Name == "quota.identify");
        var decide = Assert.Single(trace, span => span.Name == "quota.decide");
        var forward = Assert.Single(trace, span => span.Scope == "System.Net.Http" && span.Kind == OtlpSpan.Client);
        Assert.All([identify, decide, forward], span => Assert.Equal(pipeline.SpanId, span.ParentSpanId));
        Assert.Equal(("QuotaProxy", "QuotaProxy"), (identify.Scope, decide.Scope));
        Assert.Equal(("quotes", "prod"), (identify.Attributes["quota.route"], identify.Attributes["quota.tenant"]));
        Assert.Equal(
            ("quotes", "prod", "daily", "1", "admitted", "true"),
            (decide.Attributes["quota.route"], decide.Attributes["quota.tenant"], decide.Attributes["quota.pool"], decide.Attributes["quota.cost"], decide.Attributes["quota.outcome"], decide.Attributes["quota.admitted"]));
        // The vendor was called in the same trace, by the forwarding span.
        var traceparents = vendor.Calls.SelectMany(call => VendorServer.HeaderValues(call, "traceparent")).ToList();
        Assert.Contains($"00-{TraceId}-{forward.SpanId}-01", traceparents);

        // The rejected one: decided, never forwarded.
        var rejected = Assert.Single(spans, span => span.Name == "quota.decide" && span.Attributes.GetValueOrDefault("quota.outcome") == "rejected_quota");
        Assert.Equal(("false", "tenant"), (rejected.Attributes["quota.admitted"], rejected.Attributes["quota.limited_by"]));
        Assert.DoesNotContain(spans, span => span.TraceId == rejected.TraceId && span.Scope == "System.Net.Http" && span.Kind == OtlpSpan.Client && span.ParentSpanId == rejected.ParentSpanId);
        Assert.Equal(3, spans.Count(span => span.Name == "GET /quotes/{**rest}"));
        // Scrapes are not traced; no key, in any form, is on the wire.
        Assert.DoesNotContain(spans, span => span.Scope == "Microsoft.AspNetCore" && span.Attributes.Values.Any(value => value.Contains("/metrics", StringComparison.Ordinal)));
        var wire = string.Concat(exports.Select(System.Text.Encoding.Latin1.GetString));
        Assert.DoesNotContain(ProdKey, wire, StringComparison.Ordinal);
        Assert.DoesNotContain(Enforcement.Identity.ApiKeyHash.Compute(ProdKey), wire, StringComparison.OrdinalIgnoreCase);
    }
}
