using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using QuotaProxy.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace QuotaProxy.Tests;

/// <summary>
/// What a caller can hold by being slow or big: a MaxInFlight slot past its lease TTL, the vendor past a
/// route's time limit, a body past the limit, an upload at a trickle. The real proxy on real Redis.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class SlowClientTests(RedisFixture redis)
{
    private TestProxyConfig Config(VendorServer vendor) => new TestProxyConfig(vendor.Url)
        .Pool("daily", 100, "1d", "UTC", ("prod", null))
        .Route("downloads", pool: "daily", cost: 1)
        .ApiKey("prod-key", "prod")
        .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix());

    /// <summary>The vendor takes <paramref name="delay"/> on <c>/slow</c>, and answers at once elsewhere.</summary>
    private static void SlowOn(VendorServer vendor, TimeSpan delay)
    {
        vendor.Server.ResetMappings();
        vendor.Server.Given(Request.Create().WithPath("/slow").UsingAnyMethod())
            .AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(200).WithBody("{\"vendor\":\"slow\"}").WithDelay(delay));
        vendor.Server.Given(Request.Create().UsingAnyMethod())
            .AtPriority(2)
            .RespondWith(Response.Create().WithStatusCode(200).WithBody("{\"vendor\":\"ok\"}"));
    }

    [Fact]
    public async Task ARequestLongerThanItsLeaseTtl_KeepsItsMaxInFlightSlot_SoTheVendorNeverSeesMoreThanMaxInFlight()
    {
        using var vendor = new VendorServer();
        SlowOn(vendor, TimeSpan.FromSeconds(5));
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor)
            .Set("Quota:Pools:daily:Tenants:prod:MaxInFlight", "1")
            .Set("Quota:Store:LeaseTtl", "00:00:02"));

        var slow = proxy.GetAsync("prod-key", "/downloads/slow");
        await Task.Delay(TimeSpan.FromSeconds(4.2)); // twice the lease TTL: without renewal, its lease is gone
        using var meanwhile = await proxy.GetAsync("prod-key", "/downloads/fast");
        using var slowResponse = await slow;
        using var after = await proxy.GetAsync("prod-key", "/downloads/fast");

        Assert.Equal(HttpStatusCode.TooManyRequests, meanwhile.StatusCode);
        Assert.Equal("concurrency", (await meanwhile.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("limitedBy").GetString());
        Assert.Equal(HttpStatusCode.OK, slowResponse.StatusCode);
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        Assert.Equal(0, vendor.CallsTo("/fast") - 1);
    }

    [Fact]
    public async Task ARouteTimeLimit_EndsAVendorCallThatTakesLonger()
    {
        using var vendor = new VendorServer();
        SlowOn(vendor, TimeSpan.FromSeconds(5));
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor).Set("ReverseProxy:Routes:downloads:Timeout", "00:00:01"));

        var watch = Stopwatch.StartNew();
        using var response = await proxy.GetAsync("prod-key", "/downloads/slow");

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(3));
    }

    [Fact]
    public async Task AMeteredRequestDeclaringABodyAboveTheLimit_Gets413_BeforeAnythingIsCharged_AndTheVendorIsNotCalled()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor).Set("Quota:Requests:MaxBodyBytes", "1000"));

        using var big = new HttpRequestMessage(HttpMethod.Post, "/downloads/upload") { Content = new ByteArrayContent(new byte[2000]) };
        big.Headers.Add("X-Api-Key", "prod-key");
        using var refused = await proxy.Client.SendAsync(big);
        using var small = new HttpRequestMessage(HttpMethod.Post, "/downloads/upload") { Content = new ByteArrayContent(new byte[1000]) };
        small.Headers.Add("X-Api-Key", "prod-key");
        using var admitted = await proxy.Client.SendAsync(small);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType!.MediaType);
        Assert.Equal("urn:quotaproxy:problem:body-too-large", (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("type").GetString());
        Assert.Equal(HttpStatusCode.OK, admitted.StatusCode);
        Assert.Equal("1", admitted.Header("X-RateLimit-Used")); // only the small one was charged
        Assert.Single(vendor.Calls);
    }

    [Fact]
    public async Task AnUploadSlowerThanTheMinimumRate_IsCut()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor)
            .Set("Quota:Requests:MinUploadBytesPerSecond", "1000")
            .Set("Quota:Requests:MinUploadGracePeriod", "00:00:02"));

        using var trickle = new HttpRequestMessage(HttpMethod.Post, "/downloads/upload") { Content = new TrickleContent(bytes: 100_000, every: TimeSpan.FromSeconds(1), chunk: 10) };
        trickle.Headers.Add("X-Api-Key", "prod-key");
        var watch = Stopwatch.StartNew();
        HttpStatusCode? status = null;
        try
        {
            using var response = await proxy.Client.SendAsync(trickle);
            status = response.StatusCode;
        }
        catch (HttpRequestException)
        {
            // The server closed the connection on the upload: cut.
        }

        // Cut: the connection closed on the upload, or 408 (Kestrel's answer to a body that came too slowly); never a 500.
        Assert.True(status is null or HttpStatusCode.RequestTimeout, $"answered {status}");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(15), $"the trickle lasted {watch.Elapsed}");
        Assert.DoesNotContain(vendor.Calls, call => call.RequestMessage!.BodyAsBytes?.Length == 100_000);
    }

    /// <summary>A body of <c>bytes</c> bytes sent <c>chunk</c> bytes at a time, one chunk per <c>every</c>.</summary>
    private sealed class TrickleContent(int bytes, TimeSpan every, int chunk) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            for (var sent = 0; sent < bytes; sent += chunk)
            {
                await stream.WriteAsync(new byte[chunk]);
                await stream.FlushAsync();
                await Task.Delay(every);
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = bytes;
            return true;
        }
    }
}
