using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using QuotaProxy.Enforcement;
using QuotaProxy.Enforcement.Leasing;
using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

// Credit leases against one real Redis, no HTTP: R simulated replicas (each its own service provider,
// connection, leases and lease keeper, as separate proxy processes would have) drain one hot pool of L
// credits with C decisions in flight between them, four tenants, cost 1, until every decision is refused.
// Then, once the leases have come back (their TTL), one caller takes what they held. Reported per replica
// count: decisions/s while draining, Redis calls per decision, the credits admitted (never above L: a lease
// is a debit), the credits still held in other replicas' leases when the first refusal came (what a lease
// costs the others until it ends), and whether the pool ends spent exactly.
// Usage: QuotaProxy.Bench.LeaseSimulation <redis host:port> [replica counts, default 1,4,16,64] [limit, default 200000] [MaxCredits, default 100] [in flight, default 256]
var redis = args[0];
var replicaCounts = (args.Length > 1 ? args[1] : "1,4,16,64").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
var limit = args.Length > 2 ? long.Parse(args[2], CultureInfo.InvariantCulture) : 200_000;
var maxCredits = args.Length > 3 ? long.Parse(args[3], CultureInfo.InvariantCulture) : 100;
var inFlight = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 256;

var admin = await ConnectionMultiplexer.ConnectAsync($"{redis},allowAdmin=true");
var server = admin.GetServers()[0];
Console.WriteLine($"pool of {limit:N0} credits, four tenants without limits of their own, cost 1, Lease MaxCredits {maxCredits}, Ttl 1 s, {inFlight} decisions in flight");
Console.WriteLine();
Console.WriteLine("| replicas | decisions/s draining | Redis calls per decision | admitted | over the pool | held by leases at the first refusal | unavailable (503) | admitted after the leases came back | pool spent exactly |");
Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
foreach (var replicas in replicaCounts)
{
    var prefix = $"leasesim{Environment.ProcessId}-{replicas}:";
    var values = new Dictionary<string, string?>
    {
        ["Quota:Store:Kind"] = "Redis",
        ["Quota:Store:Redis"] = redis,
        ["Quota:Store:KeyPrefix"] = prefix,
        ["Quota:Pools:hot:Limit"] = limit.ToString(CultureInfo.InvariantCulture),
        ["Quota:Pools:hot:Window"] = "1d",
        ["Quota:Pools:hot:Lease:MaxCredits"] = maxCredits.ToString(CultureInfo.InvariantCulture),
        ["Quota:Pools:hot:Lease:Ttl"] = "00:00:01",
    };
    foreach (var tenant in new[] { "prod", "test", "dev", "e2e" })
    {
        values[$"Quota:Pools:hot:Tenants:{tenant}:Limit"] = limit.ToString(CultureInfo.InvariantCulture);
    }

    var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
    var providers = Enumerable.Range(0, replicas)
        .Select(_ => new ServiceCollection().AddLogging().AddSingleton<IConfiguration>(configuration).AddQuotaProxy(configuration).BuildServiceProvider())
        .ToList();
    var keepers = providers.Select(p => p.GetServices<IHostedService>().OfType<LeaseKeeper>().Single()).ToList();
    foreach (var keeper in keepers)
    {
        await keeper.StartAsync(CancellationToken.None);
    }

    var stores = providers.Select(p => (Store: p.GetRequiredService<IQuotaStore>(), Pool: p.GetRequiredService<QuotaProxy.Enforcement.Configuration.LiveConfiguration>().Model.Pools["hot"])).ToList();
    var usage = new RedisKey($"{prefix}{{hot}}:usage");
    await server.ExecuteAsync("CONFIG", "RESETSTAT");

    long admitted = 0, unavailable = 0, heldAtFirstRefusal = -1;
    var watch = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, inFlight).Select(worker => Task.Run(async () =>
    {
        var (store, pool) = stores[worker % stores.Count];
        var tenant = pool.Nodes.Values.ElementAt(worker % pool.Nodes.Count);
        while (true)
        {
            RouteDecision decision;
            try
            {
                decision = await store.DebitAsync([new QuotaDebit(pool, tenant, 1)], null, CancellationToken.None);
            }
            catch (QuotaStoreUnavailableException)
            {
                Interlocked.Increment(ref unavailable);
                continue;
            }

            if (!decision.Admitted)
            {
                // The first refusal anywhere: what the pool's counter holds beyond what was spent is in leases.
                if (Interlocked.CompareExchange(ref heldAtFirstRefusal, -2, -1) == -1)
                {
                    var counter = (long)await admin.GetDatabase().HashGetAsync(usage, "pool");
                    Interlocked.Exchange(ref heldAtFirstRefusal, counter - Interlocked.Read(ref admitted));
                }

                return;
            }

            Interlocked.Increment(ref admitted);
        }
    })));
    var draining = watch.Elapsed;
    var calls = await EvalCalls();

    // The leases end (TTL 1 s) and give back what they held; one caller then takes it, one credit at a time.
    await Task.Delay(TimeSpan.FromSeconds(1.5));
    long after = 0;
    var (first, hot) = stores[0];
    var prod = hot.Nodes["prod"];
    while ((await first.DebitAsync([new QuotaDebit(hot, prod, 1)], null, CancellationToken.None)).Admitted)
    {
        after++;
    }

    foreach (var keeper in keepers)
    {
        await keeper.StopAsync(CancellationToken.None);
    }

    var final = (long)await admin.GetDatabase().HashGetAsync(usage, "pool");
    var total = admitted + after;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {replicas} | {admitted / draining.TotalSeconds:N0} | {calls / (admitted + inFlight):F4} | {admitted:N0} | {Math.Max(0, total - limit)} | {Math.Max(0, heldAtFirstRefusal):N0} | {unavailable} | {after:N0} | {(total == limit && final == limit ? "yes" : $"no: admitted {total:N0}, counter {final:N0}")} |"));
    foreach (var provider in providers)
    {
        await provider.DisposeAsync();
    }
}

async Task<double> EvalCalls()
{
    var stats = (await server.InfoAsync("commandstats")).SelectMany(g => g).ToDictionary(p => p.Key, p => p.Value);
    double Calls(string name) => stats.TryGetValue(name, out var line) ? double.Parse(line.Split(',')[0]["calls=".Length..], CultureInfo.InvariantCulture) : 0;
    return Calls("cmdstat_evalsha") + Calls("cmdstat_eval");
}
