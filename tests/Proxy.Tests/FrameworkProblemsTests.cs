using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using QuotaProxy.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace QuotaProxy.Tests;

/// <summary>
/// The framework's own errors are problem+json like the proxy's (no route, a wrong method, an unreadable
/// admin body, the vendor unreachable), and a vendor's own answer passes through untouched, empty or not.
/// </summary>
public sealed class FrameworkProblemsTests
{
    private const string AdminKey = "problems-admin-key";

    private static TestProxyConfig Config(string vendorUrl) => new TestProxyConfig(vendorUrl)
        .Pool("daily", 100, "1d", "UTC", ("prod", null))
        .Route("quotes", pool: "daily", cost: 1)
        .Route("open")
        .ApiKey("prod-key", "prod")
        .Admin(LoopbackPorts.Free(), AdminKey);

    private static async Task<(HttpStatusCode Status, string? ContentType, JsonElement Body)> ProblemAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, response.Content.Headers.ContentType?.MediaType, JsonDocument.Parse(text).RootElement);
    }

    [Fact]
    public async Task NoRoute_AWrongMethod_AndAnUnreadableAdminBody_AreProblemJson()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor.Url));
        using var badJson = new HttpRequestMessage(HttpMethod.Put, "/admin/v1/pools/daily/overrides/prod") { Content = new StringContent("{not json", Encoding.UTF8, "application/json") };
        badJson.Headers.Add("X-Admin-Key", AdminKey);
        using var patch = new HttpRequestMessage(HttpMethod.Patch, "/admin/v1/status");
        patch.Headers.Add("X-Admin-Key", AdminKey);

        var noRoute = await ProblemAsync(await proxy.Client.GetAsync("/no/such/route"));
        var unreadable = await ProblemAsync(await proxy.Admin!.SendAsync(badJson));
        var wrongMethod = await ProblemAsync(await proxy.Admin!.SendAsync(patch));

        Assert.Equal((HttpStatusCode.NotFound, "application/problem+json", "urn:quotaproxy:problem:not-found"), (noRoute.Status, noRoute.ContentType, noRoute.Body.GetProperty("type").GetString()));
        Assert.Equal((HttpStatusCode.BadRequest, "application/problem+json", "urn:quotaproxy:problem:bad-request"), (unreadable.Status, unreadable.ContentType, unreadable.Body.GetProperty("type").GetString()));
        Assert.Equal((HttpStatusCode.MethodNotAllowed, "application/problem+json", 405), (wrongMethod.Status, wrongMethod.ContentType, wrongMethod.Body.GetProperty("status").GetInt32()));
        Assert.Empty(vendor.Calls);
    }

    [Fact]
    public async Task AnUnreachableVendor_IsA502ProblemJson_NamingTheForwardersError()
    {
        await using var proxy = await ProxyInstance.StartAsync(Config($"http://127.0.0.1:{LoopbackPorts.Free()}"));

        var unmetered = await ProblemAsync(await proxy.Client.GetAsync("/open/x"));
        using var metered = new HttpRequestMessage(HttpMethod.Get, "/quotes/x");
        metered.Headers.Add("X-Api-Key", "prod-key");
        var meteredProblem = await ProblemAsync(await proxy.Client.SendAsync(metered));

        foreach (var problem in new[] { unmetered, meteredProblem })
        {
            Assert.Equal((HttpStatusCode.BadGateway, "application/problem+json"), (problem.Status, problem.ContentType));
            Assert.Equal("urn:quotaproxy:problem:vendor-unreachable", problem.Body.GetProperty("type").GetString());
            Assert.Equal("Request", problem.Body.GetProperty("forwarderError").GetString());
        }
    }

    [Fact]
    public async Task AVendorsOwnErrors_PassThroughUntouched_EvenWithNoBody()
    {
        using var vendor = new VendorServer();
        vendor.Server.Reset();
        vendor.Server.Given(Request.Create().WithPath("/empty").UsingGet()).RespondWith(Response.Create().WithStatusCode(404));
        vendor.Server.Given(Request.Create().WithPath("/teapot").UsingGet()).RespondWith(Response.Create().WithStatusCode(418).WithHeader("Content-Type", "text/plain").WithBody("short and stout"));
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor.Url));

        using var empty = await proxy.Client.GetAsync("/open/empty");
        using var teapot = await proxy.Client.GetAsync("/open/teapot");

        Assert.Equal((HttpStatusCode.NotFound, ""), (empty.StatusCode, await empty.Content.ReadAsStringAsync()));
        Assert.Null(empty.Content.Headers.ContentType);
        Assert.Equal(((HttpStatusCode)418, "text/plain", "short and stout"), (teapot.StatusCode, teapot.Content.Headers.ContentType?.MediaType, await teapot.Content.ReadAsStringAsync()));
    }
}
