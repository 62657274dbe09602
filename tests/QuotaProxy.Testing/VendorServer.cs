using WireMock.Logging;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Settings;

namespace QuotaProxy.Testing;

/// <summary>The vendor API in tests: a WireMock server on a loopback port that answers 200 to everything and logs each call.</summary>
public sealed class VendorServer : IDisposable
{
    private readonly WireMockServer _server;

    public VendorServer()
    {
        _server = WireMockServer.Start(new WireMockServerSettings { Urls = [$"http://127.0.0.1:{LoopbackPorts.Free()}"] });
        _server.Given(Request.Create().UsingAnyMethod())
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json").WithBody("{\"vendor\":\"ok\"}"));
    }

    public string Url => _server.Urls[0];

    public WireMockServer Server => _server;

    public IReadOnlyList<ILogEntry> Calls => [.. _server.LogEntries];

    public int CallsTo(string path) => _server.LogEntries.Count(e => e.RequestMessage?.Path == path);

    /// <summary>The values of one header as the vendor received it, matched without regard to case.</summary>
    public static IReadOnlyList<string> HeaderValues(ILogEntry call, string name) =>
        [.. (call.RequestMessage?.Headers ?? new Dictionary<string, WireMock.Types.WireMockList<string>>())
            .Where(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase))
            .SelectMany(h => h.Value)];

    /// <summary>From now on the vendor answers 429 (with <paramref name="retryAfter"/> as its Retry-After, when given).</summary>
    public void AnswersTooManyRequests(string? retryAfter)
    {
        _server.Reset();
        var response = Response.Create().WithStatusCode(429).WithHeader("Content-Type", "application/json").WithBody("{\"vendor\":\"slow down\"}");
        if (retryAfter is not null)
        {
            response = response.WithHeader("Retry-After", retryAfter);
        }

        _server.Given(Request.Create().UsingAnyMethod()).RespondWith(response);
    }

    /// <summary>From now on the vendor answers 200 again (its log of calls is kept).</summary>
    public void AnswersOk()
    {
        _server.ResetMappings();
        _server.Given(Request.Create().UsingAnyMethod())
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json").WithBody("{\"vendor\":\"ok\"}"));
    }

    public void Dispose() => _server.Stop();
}
