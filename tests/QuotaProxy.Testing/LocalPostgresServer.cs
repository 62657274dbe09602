using System.Diagnostics;
using System.Net.Sockets;

namespace QuotaProxy.Testing;

/// <summary>
/// A PostgreSQL server of the test's own: <c>initdb</c> in a temp directory, <c>postgres</c> on a free
/// loopback port, no fsync (a killed server keeps every commit: WAL still reaches the OS before a commit
/// returns; only a machine crash could lose it). PostgreSQL refuses to run as root, so under root the directory is given to the
/// <c>postgres</c> user and both run through <c>runuser -u postgres --</c>. It can be killed and started
/// again on the same port and data (outage tests).
/// </summary>
public sealed class LocalPostgresServer : IAsyncDisposable
{
    private readonly string _directory;

    private LocalPostgresServer(string directory, int port)
    {
        _directory = directory;
        Port = port;
    }

    public int Port { get; }

    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Pooling=true;Timeout=5";

    private string DataDirectory => Path.Combine(_directory, "data");

    public static async Task<LocalPostgresServer> StartAsync()
    {
        var directory = Directory.CreateTempSubdirectory("quotaproxy-postgres-").FullName;
        if (Environment.UserName == "root")
        {
            await RunAsync("chown", ["postgres:postgres", directory], asPostgres: false);
        }

        var server = new LocalPostgresServer(directory, LoopbackPorts.Free());
        await RunAsync(Tool("initdb"), ["-D", server.DataDirectory, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"], asPostgres: true);
        await server.StartAgainAsync();
        return server;
    }

    public async Task StartAgainAsync()
    {
        await RunAsync(Tool("pg_ctl"), [
            "-D", DataDirectory, "-l", Path.Combine(_directory, "server.log"), "-w", "-t", "30",
            "-o", $"-p {Port} -k {_directory} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            "start",
        ], asPostgres: true);
        await WaitUntilAsync(accepting: true);
    }

    /// <summary>Kills the server (immediate shutdown: an outage, not a clean stop) and waits until the port is closed.</summary>
    public async Task StopAsync()
    {
        if (File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
        {
            await RunAsync(Tool("pg_ctl"), ["-D", DataDirectory, "-m", "immediate", "-w", "stop"], asPostgres: true);
        }

        await WaitUntilAsync(accepting: false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private static string Tool(string name) => ExecutableFinder.Find(name)
        ?? throw new InvalidOperationException($"{name} is not installed: run scripts/test.sh (it installs PostgreSQL) or set {PostgresFixture.EnvironmentVariable}.");

    private static async Task RunAsync(string file, IEnumerable<string> arguments, bool asPostgres)
    {
        var start = new ProcessStartInfo(asPostgres && Environment.UserName == "root" ? "runuser" : file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        if (asPostgres && Environment.UserName == "root")
        {
            foreach (var prefix in new[] { "-u", "postgres", "--", file })
            {
                start.ArgumentList.Add(prefix);
            }
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} failed ({process.ExitCode}): {await output}{await error}");
        }
    }

    private Task WaitUntilAsync(bool accepting) => LoopbackPorts.WaitUntilAsync(IsAcceptingAsync, accepting, $"PostgreSQL on port {Port}", 30);

    private async Task<bool> IsAcceptingAsync()
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync("127.0.0.1", Port).WaitAsync(TimeSpan.FromSeconds(1));
            return true;
        }
        catch (Exception ex) when (ex is SocketException or IOException or TimeoutException)
        {
            return false;
        }
    }
}
