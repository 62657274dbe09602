using System.Diagnostics.Metrics;
using Microsoft.Extensions.Hosting;
using Prometheus;

namespace QuotaProxy.Enforcement.Monitoring;

/// <summary>
/// What operators of Envoy or Kong get out of the box, on the same <c>/metrics</c>: the .NET meters of ASP.NET
/// Core (request duration by route and status, active requests, Kestrel connections), of the HTTP client
/// YARP forwards with (upstream request duration by status, connections) and of the runtime (GC, thread
/// pool, CPU, memory), published through prometheus-net's meter adapter into the proxy's registry. With
/// <c>Quota:Metrics:Platform: true</c>: recording them costs each request (docs/benchmarks.md).
/// </summary>
internal sealed class PlatformMetrics(CollectorRegistry registry) : IHostedService
{
    private static readonly HashSet<string> Meters = new(StringComparer.Ordinal)
    {
        "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "Microsoft.AspNetCore.Routing",
        "System.Net.Http", "System.Runtime",
    };

    private IDisposable? _listening;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _listening = MeterAdapter.StartListening(new MeterAdapterOptions
        {
            Registry = registry,
            MetricFactory = Metrics.WithCustomRegistry(registry),
            // Gauges named *.count (the runtime's thread, timer and assembly counts) would break Prometheus's
            // naming rule (a _count suffix is a histogram's): promtool refuses the page with them.
            InstrumentFilterPredicate = instrument => Meters.Contains(instrument.Meter.Name) && !instrument.Name.EndsWith(".count", StringComparison.Ordinal),
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _listening?.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>The meters published (for the docs and tests).</summary>
    internal static IReadOnlyCollection<string> Published => Meters;
}
