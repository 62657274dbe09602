using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using QuotaProxy.Enforcement;
using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

// Exact mode against one Redis, no HTTP: R simulated replicas (each its own service provider, connection
// and group-commit queues, as separate proxy processes would have) keep C decisions in flight between them
// on one hot pool (four tenants), for a few seconds per replica count. Reported per run: decisions/s, Redis
// calls per decision (how many decisions a call carried), redis-server CPU per decision and its share of a
// core, and the decision latency seen by the caller. One Redis core's capacity on this pool is
// 1 s / (Redis CPU per decision): reported as an estimate beside what was measured, since the client shares
// this machine's cores with Redis.
// With "ledger" last, the ledger is on as in production: each decision carries its route and request id and
// an admitted one appends its usage event to the pool's stream (no flusher runs here; the stream is deleted
// after each run).
// Usage: QuotaProxy.Bench.StoreThroughput <redis host:port> [replica counts, default 1,2,4,8] [decisions in flight, default 256] [seconds, default 8] [ledger]
var redis = args[0];
var replicaCounts = (args.Length > 1 ? args[1] : "1,2,4,8").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
var inFlight = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 256;
var seconds = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 8;
var ledger = args.Length > 4 && args[4] == "ledger";
var keyPrefix = $"throughput{Environment.ProcessId}:";

var values = new Dictionary<string, string?>
{
    ["Quota:Store:Kind"] = "Redis",
    ["Quota:Store:Redis"] = redis,
    ["Quota:Store:KeyPrefix"] = keyPrefix,
    ["Quota:Pools:hot:Limit"] = "1000000000000",
    ["Quota:Pools:hot:Window"] = "1d",
};
if (ledger)
{
    // Never connected to: nothing here starts the flusher. The backlog bound is out of the way of a long run.
    values["Quota:Ledger:ConnectionString"] = "Host=127.0.0.1;Port=1;Database=unused";
    values["Quota:Ledger:MaxBacklog"] = "1000000000000";
}

foreach (var tenant in new[] { "prod", "test", "dev", "e2e" })
{
    values[$"Quota:Pools:hot:Tenants:{tenant}:Allocation"] = "100000000000";
}

var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
if (ledger)
{
    // The pool's baseline is laid by a replica without the ledger first: with it, a fresh Redis would wait
    // for a ledger that is not there to say what the window used.
    var offValues = values.Where(v => !v.Key.StartsWith("Quota:Ledger:", StringComparison.Ordinal)).ToDictionary();
    var off = new ConfigurationBuilder().AddInMemoryCollection(offValues).Build();
    await using var layer = new ServiceCollection().AddLogging().AddSingleton<IConfiguration>(off).AddQuotaProxy(off).BuildServiceProvider();
    var hot = layer.GetRequiredService<QuotaProxy.Enforcement.Configuration.LiveConfiguration>().Model.Pools["hot"];
    for (var attempt = 0; ; attempt++)
    {
        try
        {
            await layer.GetRequiredService<IQuotaStore>().DebitAsync([new QuotaDebit(hot, hot.Nodes.Values.First(), 1)], null, CancellationToken.None);
            break;
        }
        catch (QuotaStoreUnavailableException) when (attempt < 50)
        {
            await Task.Delay(200);
        }
    }
}

var admin = await ConnectionMultiplexer.ConnectAsync($"{redis},allowAdmin=true");
var server = admin.GetServers()[0];

long unavailable = 0;
Console.WriteLine(ledger ? "The ledger on: every decision with its usage event." : "The ledger off.");
Console.WriteLine("| replicas | decisions in flight | decisions/s | unavailable (503) | Redis calls per decision | decisions per call | redis-server CPU µs per decision | redis-server CPU share of a core | p50 ms | p99 ms | one Redis core, estimated decisions/s |");
Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
foreach (var replicas in replicaCounts)
{
    var providers = Enumerable.Range(0, replicas)
        .Select(_ => new ServiceCollection().AddLogging().AddSingleton<IConfiguration>(configuration).AddQuotaProxy(configuration).BuildServiceProvider())
        .ToList();
    var stores = providers.Select(p => (Store: p.GetRequiredService<IQuotaStore>(), Pool: p.GetRequiredService<QuotaProxy.Enforcement.Configuration.LiveConfiguration>().Model.Pools["hot"])).ToList();

    // Warm-up: each store's first decision alone (it lays the pool's baseline on a fresh Redis, which 256 at
    // once would wait for), then scripts and the JIT.
    foreach (var (store, pool) in stores)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await store.DebitAsync([new QuotaDebit(pool, pool.Nodes.Values.First(), 1)], null, CancellationToken.None);
                break;
            }
            catch (QuotaStoreUnavailableException) when (attempt < 50)
            {
                await Task.Delay(200);
            }
        }
    }

    await Run(TimeSpan.FromSeconds(2), record: null);
    unavailable = 0;
    await server.ExecuteAsync("CONFIG", "RESETSTAT");
    var cpuBefore = await RedisCpuMicros();
    var latencies = new List<double>[inFlight];
    var watch = Stopwatch.StartNew();
    var decided = await Run(TimeSpan.FromSeconds(seconds), latencies);
    var elapsed = watch.Elapsed;
    var cpu = await RedisCpuMicros() - cpuBefore;
    var calls = await EvalCalls();
    var all = latencies.SelectMany(l => l).Order().ToArray();
    var perSecond = decided / elapsed.TotalSeconds;
    var redisPerDecision = cpu / decided;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {replicas} | {inFlight} | {perSecond:N0} | {Interlocked.Read(ref unavailable)} | {calls / decided:F3} | {decided / calls:F1} | {redisPerDecision:F2} | {cpu / elapsed.TotalMicroseconds:P0} | {all[all.Length / 2]:F2} | {all[all.Length * 99 / 100]:F2} | {1_000_000 / redisPerDecision:N0} |"));

    foreach (var provider in providers)
    {
        await provider.DisposeAsync();
    }

    foreach (var stream in server.Keys(pattern: keyPrefix + "*events*"))
    {
        await admin.GetDatabase().KeyDeleteAsync(stream);
    }

    async Task<long> Run(TimeSpan length, List<double>[]? record)
    {
        var until = Stopwatch.GetTimestamp() + (long)(length.TotalSeconds * Stopwatch.Frequency);
        var counts = new long[inFlight];
        await Task.WhenAll(Enumerable.Range(0, inFlight).Select(worker => Task.Run(async () =>
        {
            var (store, pool) = stores[worker % stores.Count];
            var tenant = pool.Nodes.Values.ElementAt(worker % pool.Nodes.Count);
            var mine = record is null ? null : record[worker] = [];
            while (Stopwatch.GetTimestamp() < until)
            {
                var started = Stopwatch.GetTimestamp();
                RouteDecision decision;
                try
                {
                    var usage = ledger ? new UsageContext("bench", string.Create(CultureInfo.InvariantCulture, $"r{worker}-{counts[worker]}-{started}")) : null;
                    decision = await store.DebitAsync([new QuotaDebit(pool, tenant, 1)], usage, CancellationToken.None);
                }
                catch (QuotaStoreUnavailableException)
                {
                    Interlocked.Increment(ref unavailable); // the default 50 ms timeout: what a proxy would answer 503
                    // A refusal can come back at once (an open breaker): without a yield, 256 such loops would hold
                    // the thread pool and starve the store's own work (its baseline, its replies), as no stream of
                    // separate requests does.
                    await Task.Yield();
                    continue;
                }

                mine?.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                if (!decision.Admitted)
                {
                    throw new InvalidOperationException($"The hot pool never runs dry, yet {tenant.Path} was refused: {decision.Pools[0].LimitedBy}.");
                }

                counts[worker]++;
            }
        })));
        return counts.Sum();
    }
}

async Task<double> RedisCpuMicros()
{
    var info = (await server.InfoAsync("cpu")).SelectMany(g => g).ToDictionary(p => p.Key, p => p.Value);
    return (double.Parse(info["used_cpu_user"], CultureInfo.InvariantCulture) + double.Parse(info["used_cpu_sys"], CultureInfo.InvariantCulture)) * 1_000_000;
}

async Task<double> EvalCalls()
{
    var stats = (await server.InfoAsync("commandstats")).SelectMany(g => g).ToDictionary(p => p.Key, p => p.Value);
    double Calls(string name) => stats.TryGetValue(name, out var line) ? double.Parse(line.Split(',')[0]["calls=".Length..], CultureInfo.InvariantCulture) : 0;
    return Calls("cmdstat_evalsha") + Calls("cmdstat_eval");
}
