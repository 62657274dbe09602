using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using QuotaProxy.Enforcement;
using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

// Decision latency through the Redis store (the proxy's own code path: options → model → debit.lua) for
// one parent with 4 children and one with 10,000, every child with Allocation, Guaranteed and one of four
// priorities, so a decision reads the parent's guarantee aggregate and three priority levels. The 10,000
// children are all debited once first, so their hash holds every field. Rounds alternate between the two
// pools; decisions are sequential, so the figures are latency, not throughput.
// Usage: QuotaProxy.Bench.Siblings <redis host:port> [decisions per round] [rounds]; STORE=InProcess measures the
// in-process store instead (the C# side of the same rule).
var redis = args[0];
var perRound = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 20_000;
var rounds = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 3;
var sizes = new[] { 4, 10_000 };

var values = new Dictionary<string, string?>
{
    ["Quota:Store:Kind"] = Environment.GetEnvironmentVariable("STORE") ?? "Redis",
    ["Quota:Store:Redis"] = redis,
    ["Quota:Store:Timeout"] = "00:00:05",
    ["Quota:Store:KeyPrefix"] = $"bench{Environment.ProcessId}:",
};
foreach (var size in sizes)
{
    var pool = $"Quota:Pools:siblings{size}";
    values[$"{pool}:Limit"] = "1000000000000";
    values[$"{pool}:Window"] = "1d";
    for (var i = 0; i < size; i++)
    {
        values[$"{pool}:Tenants:t{i}:Allocation"] = "1000";
        values[$"{pool}:Tenants:t{i}:Guaranteed"] = "100";
        values[$"{pool}:Tenants:t{i}:Priority"] = $"{(i % 4) + 1}";
    }
}

var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
var services = new ServiceCollection().AddLogging().AddSingleton<IConfiguration>(configuration).AddQuotaProxy(configuration).BuildServiceProvider();
var model = services.GetRequiredService<QuotaProxy.Enforcement.Configuration.LiveConfiguration>().Model;
var store = services.GetRequiredService<IQuotaStore>();
var server = services.GetRequiredService<IConnectionMultiplexer>().GetServers()[0];

// Lowest-priority children (t3, t7, …): their decisions read the most aggregates.
QuotaDebit DebitFor(PoolDefinition pool, Random random) => new(pool, pool.Nodes[$"t{(random.Next(pool.Nodes.Count / 4) * 4) + 3}"], 1);

foreach (var size in sizes)
{
    var pool = model.Pools[$"siblings{size}"];
    foreach (var node in pool.Nodes.Values)
    {
        await Decide(new QuotaDebit(pool, node, 1));
    }
}

var results = sizes.ToDictionary(s => s, _ => new List<(double P50, double P99, double Mean, double RedisUs)>());
var random = new Random(7);
for (var round = 0; round < rounds + 1; round++)
{
    foreach (var size in sizes)
    {
        var pool = model.Pools[$"siblings{size}"];
        await server.ExecuteAsync("CONFIG", "RESETSTAT");
        var latencies = new double[perRound];
        for (var i = 0; i < perRound; i++)
        {
            var debit = DebitFor(pool, random);
            var started = Stopwatch.GetTimestamp();
            await Decide(debit);
            latencies[i] = Stopwatch.GetElapsedTime(started).TotalMicroseconds;
        }

        var stats = (await server.ExecuteAsync("INFO", "commandstats")).ToString()!;
        var evalsha = stats.Split('\n').SingleOrDefault(l => l.StartsWith("cmdstat_evalsha:", StringComparison.Ordinal)) ?? "usec_per_call=0";
        var redisUs = double.Parse(evalsha.Split(',').Single(p => p.StartsWith("usec_per_call=", StringComparison.Ordinal))["usec_per_call=".Length..], CultureInfo.InvariantCulture);
        Array.Sort(latencies);
        if (round > 0)
        {
            // Round 0 warms the JIT and the connection.
            results[size].Add((latencies[perRound / 2], latencies[perRound * 99 / 100], latencies.Average(), redisUs));
        }
    }
}

Console.WriteLine($"| siblings | round | p50 µs | p99 µs | mean µs | Redis µs per call (commandstats) |");
Console.WriteLine("|---:|---:|---:|---:|---:|---:|");
for (var round = 0; round < rounds; round++)
{
    foreach (var size in sizes)
    {
        var r = results[size][round];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {size:N0} | {round + 1} | {r.P50:F0} | {r.P99:F0} | {r.Mean:F0} | {r.RedisUs:F2} |"));
    }
}

double Median(IEnumerable<double> xs)
{
    var sorted = xs.Order().ToArray();
    return sorted[sorted.Length / 2];
}

var p50Ratio = Median(results[10_000].Zip(results[4]).Select(p => p.First.P50 / p.Second.P50));
var redisRatio = Median(results[10_000].Zip(results[4]).Select(p => p.First.RedisUs / p.Second.RedisUs));
Console.WriteLine();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"10,000 siblings / 4 siblings, median over rounds: p50 latency {p50Ratio:F3}, Redis time per decision {redisRatio:F3}"));

async Task Decide(QuotaDebit debit)
{
    var decision = await store.DebitAsync(debit, CancellationToken.None);
    if (!decision.Admitted)
    {
        throw new InvalidOperationException($"The benchmark's pools never run dry, yet {debit.Tenant.Path} was rejected: {decision.LimitedBy}.");
    }
}
