using System.Net;
using QuotaProxy.Testing;
using Xunit.Abstractions;

namespace QuotaProxy.Tests;

/// <summary>
/// Many callers racing through two proxy replicas on one Redis, with production's default store timeout
/// (50 ms): the pool is spent exactly, never exceeded, and the vendor sees exactly the admitted requests.
/// 400 requests at once through two in-process replicas saturate a 2-core machine; a decision that misses
/// its deadline there is a 503 that costs nothing, so the pool is still spent exactly.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class ExactnessTests(RedisFixture redis, ITestOutputHelper output)
{
    private static readonly (string Route, long Cost)[] Routes = [("one", 1), ("two", 2), ("five", 5)];

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public async Task ConcurrentMixedCosts_TwoReplicas_AdmitExactlyThePool(int round)
    {
        using var vendor = new VendorServer();
        var prefix = RedisFixture.NewKeyPrefix();
        var config = new TestProxyConfig(vendor.Url)
            .Pool("shared", 100, "1d", "UTC", ("prod", null), ("test", null))
            .ApiKey("prod-key", "prod")
            .ApiKey("test-key", "test")
            .Redis(redis.ConnectionString, prefix, timeout: TimeSpan.FromMilliseconds(50));
        foreach (var (route, cost) in Routes)
        {
            config.Route(route, pool: "shared", cost: cost);
        }

        await using var first = await ProxyInstance.StartAsync(config);
        await using var second = await ProxyInstance.StartAsync(config);
        var random = new Random(round);
        var requests = Enumerable.Range(0, 400).Select(i => (
            Proxy: i % 2 == 0 ? first : second,
            Route: Routes[random.Next(Routes.Length)],
            Key: random.Next(2) == 0 ? "prod-key" : "test-key",
            Path: $"/r{i}")).ToList();

        using var gate = new SemaphoreSlim(0);
        var sends = requests.Select(async r =>
        {
            await gate.WaitAsync();
            using var message = new HttpRequestMessage(HttpMethod.Get, $"/{r.Route.Route}{r.Path}");
            message.Headers.Add("X-Api-Key", r.Key);
            using var response = await r.Proxy.Client.SendAsync(message);
            return (r.Route.Cost, r.Path, response.StatusCode);
        }).ToList();
        gate.Release(requests.Count);
        var results = await Task.WhenAll(sends).WaitAsync(TimeSpan.FromSeconds(60));

        var admitted = results.Where(r => r.StatusCode == HttpStatusCode.OK).ToList();
        var admittedCredits = admitted.Sum(r => r.Cost);
        output.WriteLine($"round {round}: {admitted.Count} admitted ({admittedCredits} credits), {results.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests)} rejected, {results.Count(r => r.StatusCode == HttpStatusCode.ServiceUnavailable)} x 503, vendor saw {vendor.Calls.Count}");

        Assert.All(results, r => Assert.Contains(r.StatusCode, new[] { HttpStatusCode.OK, HttpStatusCode.TooManyRequests, HttpStatusCode.ServiceUnavailable }));
        // Never over the pool. Spent exactly unless decisions were abandoned: the credits a 503's decision held
        // until it was given back were not there for the requests that met a full pool meanwhile.
        Assert.InRange(admittedCredits, 1, 100);
        if (!results.Any(r => r.StatusCode == HttpStatusCode.ServiceUnavailable))
        {
            Assert.Equal(100, admittedCredits);
        }

        // A 503 costs nothing: once the abandoned decisions are given back, Redis holds exactly what was admitted.
        await Poll.UntilAsync(
            $"the pool's counter to settle at the {admittedCredits} credits admitted",
            async () => (long?)await redis.Connection.GetDatabase().HashGetAsync(new Enforcement.Redis.RedisKeys(prefix).PoolUsage("shared"), "pool") ?? 0,
            pool => pool == admittedCredits,
            TimeSpan.FromSeconds(30));
        Assert.Equal(admitted.Count, vendor.Calls.Count);
        var vendorPaths = vendor.Calls.Select(c => c.RequestMessage!.Path).Order(StringComparer.Ordinal);
        Assert.Equal(admitted.Select(r => r.Path).Order(StringComparer.Ordinal), vendorPaths);
        Assert.Contains(admitted, r => r.Cost == 1);
        Assert.True(results.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests && r.Cost == 1) > 0, "a cost-1 request was rejected, so the pool was full");
    }
}
