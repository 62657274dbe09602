using StackExchange.Redis;

namespace QuotaProxy.Testing;

/// <summary>
/// A master, one replica and a Sentinel on loopback ports, set up as production should run them: both data
/// nodes refuse writes unless a replica is connected (<c>min-replicas-to-write 1</c>), so a master that has
/// been demoted, and has lost its replica to the new master, writes nothing that the switch would throw away.
/// </summary>
public sealed class LocalRedisSentinel : IAsyncDisposable
{
    public const string ServiceName = "quotaproxy";

    private static readonly string[] WriteOnlyWithAReplica = ["--min-replicas-to-write", "1", "--min-replicas-max-lag", "10"];

    private LocalRedisSentinel(LocalRedisServer first, LocalRedisServer second, LocalRedisServer sentinel) => (First, Second, Sentinel) = (first, second, sentinel);

    /// <summary>The master at the start.</summary>
    public LocalRedisServer First { get; }

    /// <summary>The replica at the start.</summary>
    public LocalRedisServer Second { get; }

    public LocalRedisServer Sentinel { get; }

    /// <summary>The Sentinel and the service name, as StackExchange.Redis takes them (it follows the master).</summary>
    public string ConnectionString => $"{Sentinel.ConnectionString},serviceName={ServiceName}";

    public static async Task<LocalRedisSentinel> StartAsync()
    {
        var first = await LocalRedisServer.StartWithAsync(WriteOnlyWithAReplica);
        var second = await LocalRedisServer.StartWithAsync([.. WriteOnlyWithAReplica, "--replicaof", "127.0.0.1", first.Port.ToString()]);
        await WaitForReplicationAsync(master: first, replica: second);
        var sentinel = await LocalRedisServer.StartSentinelAsync(first.Port, ServiceName);
        var set = new LocalRedisSentinel(first, second, sentinel);
        await Poll.UntilAsync(
            "the Sentinel to know the replica",
            async () => await set.SentinelAsync("SENTINEL", "REPLICAS", ServiceName),
            replicas => replicas.Contains(second.Port.ToString(), StringComparison.Ordinal),
            TimeSpan.FromSeconds(30));
        return set;
    }

    /// <summary>The master's port, as the Sentinel says.</summary>
    public async Task<int> MasterPortAsync() => int.Parse((await SentinelAsync("SENTINEL", "GET-MASTER-ADDR-BY-NAME", ServiceName)).Split(' ')[1]);

    /// <summary>
    /// <c>SENTINEL FAILOVER</c>, then waits until the Sentinel names the other node and the old master replicates
    /// from it (until then the new master, which has no replica, refuses writes).
    /// </summary>
    public async Task FailoverAsync()
    {
        var before = await MasterPortAsync();
        var (oldMaster, newMaster) = before == First.Port ? (First, Second) : (Second, First);
        await SentinelAsync("SENTINEL", "FAILOVER", ServiceName);
        await Poll.UntilAsync("the Sentinel to name the new master", MasterPortAsync, port => port == newMaster.Port, TimeSpan.FromSeconds(30));
        await WaitForReplicationAsync(master: newMaster, replica: oldMaster);
    }

    private async Task<string> SentinelAsync(params object[] command)
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(new ConfigurationOptions
        {
            EndPoints = { Sentinel.ConnectionString },
            CommandMap = CommandMap.Sentinel,
            AllowAdmin = true,
        });
        var reply = await connection.GetServer(connection.GetEndPoints()[0]).ExecuteAsync((string)command[0], command[1..]);
        return Flatten(reply);
    }

    private static string Flatten(RedisResult reply) => reply.Resp2Type == ResultType.Array
        ? string.Join(' ', ((RedisResult[])reply!).Select(Flatten))
        : reply.ToString();

    private static async Task WaitForReplicationAsync(LocalRedisServer master, LocalRedisServer replica)
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync($"{replica.ConnectionString},allowAdmin=true");
        await Poll.UntilAsync(
            $"{replica.ConnectionString} to replicate from {master.ConnectionString}",
            async () =>
            {
                try
                {
                    return (string?)await connection.GetServer(connection.GetEndPoints()[0]).ExecuteAsync("INFO", "replication") ?? "";
                }
                catch (RedisConnectionException)
                {
                    // The demoted master drops its clients as it turns replica (seen once under the suite's load): not yet.
                    return "";
                }
            },
            info => info.Contains($"master_port:{master.Port}", StringComparison.Ordinal) && info.Contains("master_link_status:up", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        await Sentinel.DisposeAsync();
        await First.DisposeAsync();
        await Second.DisposeAsync();
    }
}
