using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using QuotaProxy;
using QuotaProxy.Enforcement.Http;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

// The quota step on its own: QuotaEnforcementMiddleware as the proxy builds it (bench/proxy.json, the
// in-process store), on a fresh DefaultHttpContext per request, the next step a no-op. "Unmetered" is the
// same call on a route without quota metadata: the context and the catalog lookup alone. The difference is
// what identifying, pricing, deciding and writing the headers cost per request, in time and allocations.
// "MeteredFromLease" is the metered call on a pool with a credit lease (its requests spent from a block).
// Usage: bench/quota-step.sh (or dotnet run -c Release --project bench/QuotaStep -- --filter '*').
BenchmarkSwitcher.FromAssembly(typeof(QuotaStepBenchmarks).Assembly).Run(args);

[MemoryDiagnoser]
public class QuotaStepBenchmarks
{
    private WebApplication? _app;
    private QuotaEnforcementMiddleware? _middleware;
    private WebApplication? _leaseApp;
    private QuotaEnforcementMiddleware? _leaseMiddleware;
    private RouteModel? _metered;
    private RouteModel? _unmetered;

    [GlobalSetup]
    public void Setup()
    {
        var config = Path.Combine(RepositoryRoot(), "bench", "proxy.json");
        _app = QuotaProxyHost.Build(["--config", config, "--Quota:Store:Kind=InProcess", "--Logging:LogLevel:Default=Warning"]);
        _metered = Route("metered", new Dictionary<string, string> { ["Quota.Pool"] = "bench", ["Quota.Cost"] = "1" });
        _unmetered = Route("open", new Dictionary<string, string>());
        _middleware = ActivatorUtilities.CreateInstance<QuotaEnforcementMiddleware>(_app.Services, (RequestDelegate)(_ => Task.CompletedTask));
        _leaseApp = QuotaProxyHost.Build(["--config", config, "--Quota:Store:Kind=InProcess", "--Quota:Pools:bench:Lease:MaxCredits=1000000", "--Quota:Pools:bench:Lease:Ttl=00:01:00", "--Logging:LogLevel:Default=Warning"]);
        _leaseMiddleware = ActivatorUtilities.CreateInstance<QuotaEnforcementMiddleware>(_leaseApp.Services, (RequestDelegate)(_ => Task.CompletedTask));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _app?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _leaseApp?.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true)]
    public Task Unmetered() => _middleware!.InvokeAsync(Context(_unmetered!));

    [Benchmark]
    public Task Metered() => _middleware!.InvokeAsync(Context(_metered!));

    [Benchmark]
    public Task MeteredFromLease() => _leaseMiddleware!.InvokeAsync(Context(_metered!));

    private static RouteModel Route(string id, IReadOnlyDictionary<string, string> metadata) =>
        new(new RouteConfig { RouteId = id, ClusterId = "vendor", Match = new RouteMatch { Path = $"/{id}/{{**rest}}" }, Metadata = metadata }, null, HttpTransformer.Empty);

    private static DefaultHttpContext Context(RouteModel route)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "GET";
        context.Request.Path = "/metered/x";
        context.Request.Headers["X-Api-Key"] = "bench-key";
        context.Features.Set<IReverseProxyFeature>(new ReverseProxyFeature { Route = route });
        return context;
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "QuotaProxy.sln")))
            {
                return directory.FullName;
            }
        }

        return Environment.GetEnvironmentVariable("QUOTAPROXY_ROOT") ?? throw new InvalidOperationException("Run from the repository (or set QUOTAPROXY_ROOT).");
    }
}
