using System.Diagnostics;
using StackExchange.Redis;

namespace QuotaProxy.Testing;

/// <summary>
/// A Redis Cluster of three masters and no replicas on loopback ports, made with the local
/// <c>redis-server</c> and <c>redis-cli --cluster create</c>. The nodes serve their own slots while another
/// node is down (<c>cluster-require-full-coverage no</c>), so a test can take one master away.
/// </summary>
public sealed class LocalRedisCluster : IAsyncDisposable
{
    private LocalRedisCluster(IReadOnlyList<LocalRedisServer> nodes) => Nodes = nodes;

    public IReadOnlyList<LocalRedisServer> Nodes { get; }

    /// <summary>Every node, as StackExchange.Redis takes a cluster.</summary>
    public string ConnectionString => string.Join(",", Nodes.Select(node => node.ConnectionString));

    public static async Task<LocalRedisCluster> StartAsync()
    {
        var nodes = new List<LocalRedisServer>();
        for (var i = 0; i < 3; i++)
        {
            // The cluster bus on a port of its own from the same safe range: by default it is the node's port +
            // 10,000, which lands in the kernel's ephemeral range, where a client connection's source port can
            // hold it (a node failed to start that way once, on a fresh clone's suite run).
            nodes.Add(await LocalRedisServer.StartWithAsync(
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "no",
                "--cluster-port", LoopbackPorts.Free().ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        var cluster = new LocalRedisCluster(nodes);
        var cli = ExecutableFinder.Find("redis-cli") ?? throw new InvalidOperationException("redis-cli is not installed (it comes with redis-server's package).");
        var create = new ProcessStartInfo(cli) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in (string[])["--cluster", "create", .. nodes.Select(node => node.ConnectionString), "--cluster-replicas", "0", "--cluster-yes"])
        {
            create.ArgumentList.Add(argument);
        }

        using (var process = Process.Start(create) ?? throw new InvalidOperationException("redis-cli did not start."))
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"redis-cli --cluster create failed ({process.ExitCode}): {await output} {await error}");
            }
        }

        // Every node must know every slot's owner before the first command, or it answers CLUSTERDOWN.
        foreach (var node in nodes)
        {
            await using var connection = await ConnectionMultiplexer.ConnectAsync(node.ConnectionString);
            await Poll.UntilAsync(
                $"node {node.ConnectionString} to say cluster_state:ok",
                async () => (string?)await connection.GetServer(connection.GetEndPoints()[0]).ExecuteAsync("CLUSTER", "INFO") ?? "",
                info => info.Contains("cluster_state:ok", StringComparison.Ordinal),
                TimeSpan.FromSeconds(30));
        }

        return cluster;
    }

    /// <summary>The node that serves <paramref name="key"/>'s slot.</summary>
    public LocalRedisServer NodeFor(IConnectionMultiplexer connection, RedisKey key)
    {
        var endpoint = connection.GetDatabase().IdentifyEndpoint(key)!.ToString()!;
        return Nodes.Single(node => endpoint.EndsWith(":" + node.Port, StringComparison.Ordinal));
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes)
        {
            await node.DisposeAsync();
        }
    }
}
