using Xunit;
using StackExchange.Redis;
using Testcontainers.Redis;

namespace QuotaProxy.Testing;

/// <summary>
/// One real Redis for a test collection. <c>QUOTAPROXY_TEST_REDIS</c> names one; unset, a Testcontainers Redis
/// where a Docker engine answers, else a local <c>redis-server</c> on a free loopback port. Tests isolate
/// themselves by key prefix (<see cref="NewKeyPrefix"/>), never by FLUSHALL.
/// </summary>
public sealed class RedisFixture : IAsyncLifetime
{
    public const string EnvironmentVariable = "QUOTAPROXY_TEST_REDIS";

    private LocalRedisServer? _local;
    private RedisContainer? _container;

    public string ConnectionString { get; private set; } = "";

    /// <summary>Where the server came from, for test output.</summary>
    public string Source { get; private set; } = "";

    public ConnectionMultiplexer Connection { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } configured)
        {
            ConnectionString = configured;
            Source = EnvironmentVariable;
        }
        else if (DockerEngine.Answers())
        {
            _container = new RedisBuilder("redis:7-alpine").Build();
            await _container.StartAsync();
            ConnectionString = _container.GetConnectionString();
            Source = "testcontainers";
        }
        else
        {
            _local = await LocalRedisServer.StartAsync();
            ConnectionString = _local.ConnectionString;
            Source = "local redis-server";
        }

        // Admin mode: tests flush the script cache and read INFO; the proxy itself never needs it.
        Connection = await ConnectionMultiplexer.ConnectAsync(ConnectionString + ",allowAdmin=true");
    }

    public static string NewKeyPrefix() => $"qp:test-{Guid.NewGuid():N}:";

    public async Task DisposeAsync()
    {
        if (Connection is not null)
        {
            await Connection.DisposeAsync();
        }

        if (_container is not null)
        {
            await _container.DisposeAsync();
        }

        if (_local is not null)
        {
            await _local.DisposeAsync();
        }
    }
}

/// <summary>Whether a Docker engine answers here (the development and CI machines have none).</summary>
internal static class DockerEngine
{
    public static bool Answers()
    {
        var host = Environment.GetEnvironmentVariable("DOCKER_HOST");
        if (!string.IsNullOrEmpty(host))
        {
            return true;
        }

        const string socket = "/var/run/docker.sock";
        if (!File.Exists(socket))
        {
            return false;
        }

        try
        {
            using var client = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            client.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(socket));
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }
}
