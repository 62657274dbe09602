using System.Diagnostics;
using System.Net.Sockets;

namespace QuotaProxy.Testing;

/// <summary>
/// A <c>redis-server</c> process of the test's own on a loopback port, in a temp directory, with no
/// persistence. It can be stopped and started again on the same port (outage tests).
/// </summary>
public sealed class LocalRedisServer : IAsyncDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("quotaproxy-redis-").FullName;
    private Process? _process;

    private readonly bool _appendOnly;
    private readonly string[] _extraArguments;
    private string? _configFile;

    private LocalRedisServer(int port, bool appendOnly = false, params string[] extraArguments) => (Port, _appendOnly, _extraArguments) = (port, appendOnly, extraArguments);

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port}";

    /// <param name="appendOnly">Keep an append-only file (fsync every write), as production should; by default the server keeps its data in memory only.</param>
    public static async Task<LocalRedisServer> StartAsync(bool appendOnly = false)
    {
        var server = new LocalRedisServer(LoopbackPorts.Free(), appendOnly);
        await server.StartAgainAsync();
        return server;
    }

    /// <summary>A server with its port chosen and nothing listening on it yet: <see cref="StartAgainAsync"/> starts it.</summary>
    public static LocalRedisServer NotStarted() => new(LoopbackPorts.Free());

    /// <summary>A server started with <paramref name="arguments"/> added to its command line (a cluster node, say).</summary>
    public static async Task<LocalRedisServer> StartWithAsync(params string[] arguments)
    {
        var server = new LocalRedisServer(LoopbackPorts.Free(), false, arguments);
        await server.StartAgainAsync();
        return server;
    }

    /// <summary>
    /// A server that also listens with TLS on <see cref="TlsPort"/> (the certificate of
    /// <paramref name="authority"/>), with <paramref name="arguments"/> added (an ACL user, say). Its plain port
    /// stays open for the fixture's own readiness probe.
    /// </summary>
    public static async Task<LocalRedisServer> StartWithTlsAsync(TestCertificateAuthority authority, params string[] arguments)
    {
        var tlsPort = LoopbackPorts.Free();
        var server = new LocalRedisServer(LoopbackPorts.Free(), false, [
            "--tls-port", tlsPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--tls-cert-file", authority.ServerCertificateFile,
            "--tls-key-file", authority.ServerKeyFile,
            "--tls-ca-cert-file", authority.CaCertificateFile,
            "--tls-auth-clients", "no",
            .. arguments])
        {
            TlsPort = tlsPort,
        };
        await server.StartAgainAsync();
        return server;
    }

    /// <summary>The TLS port of a server started with <see cref="StartWithTlsAsync"/>; 0 otherwise.</summary>
    public int TlsPort { get; private init; }

    /// <summary>
    /// A Sentinel (<c>redis-server sentinel.conf --sentinel</c>) watching the master on <paramref name="masterPort"/>
    /// as <paramref name="serviceName"/>, with a quorum of one and a one-second down-after.
    /// </summary>
    public static async Task<LocalRedisServer> StartSentinelAsync(int masterPort, string serviceName)
    {
        var server = new LocalRedisServer(LoopbackPorts.Free(), false, "--sentinel");
        server._configFile = Path.Combine(server._directory, "sentinel.conf");
        await File.WriteAllTextAsync(server._configFile, $"""
            sentinel monitor {serviceName} 127.0.0.1 {masterPort} 1
            sentinel down-after-milliseconds {serviceName} 1000
            sentinel failover-timeout {serviceName} 10000
            sentinel parallel-syncs {serviceName} 1

            """);
        await server.StartAgainAsync();
        return server;
    }

    public async Task StartAgainAsync()
    {
        var binary = ExecutableFinder.Find("redis-server")
            ?? throw new InvalidOperationException("redis-server is not installed: run scripts/test.sh (it installs it) or set QUOTAPROXY_TEST_REDIS.");
        var start = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (_configFile is not null)
        {
            start.ArgumentList.Add(_configFile); // a Sentinel's config file comes first, and it rewrites it
        }

        foreach (var argument in (string[])["--port", Port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", _appendOnly ? "yes" : "no", "--appendfsync", "always", "--dir", _directory, "--protected-mode", "no", .. _extraArguments])
        {
            start.ArgumentList.Add(argument);
        }

        _process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start.");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        await WaitUntilAsync(accepting: true);
    }

    /// <summary>Kills the server (SIGKILL: an outage, not a graceful shutdown) and waits until the port is closed.</summary>
    public async Task StopAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }

        _process = null;
        await WaitUntilAsync(accepting: false);
    }

    /// <summary>Freezes the server (SIGSTOP): the port stays open, nothing answers, until <see cref="Resume"/>.</summary>
    public void Pause() => Signal(SigStop);

    /// <summary>Thaws a paused server (SIGCONT): it goes on with whatever it had read meanwhile.</summary>
    public void Resume() => Signal(SigCont);

    private const int SigCont = 18;
    private const int SigStop = 19;

    private void Signal(int signal)
    {
        var process = _process ?? throw new InvalidOperationException("redis-server is not running.");
        if (Kill(process.Id, signal) != 0)
        {
            throw new InvalidOperationException($"kill({process.Id}, {signal}) failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}.");
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private Task WaitUntilAsync(bool accepting) => LoopbackPorts.WaitUntilAsync(IsAcceptingAsync, accepting, $"redis-server on port {Port}", 15);

    private async Task<bool> IsAcceptingAsync()
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync("127.0.0.1", Port).WaitAsync(TimeSpan.FromSeconds(1));
            await using var stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray());
            var buffer = new byte[16];
            var read = await stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(1));
            // +PONG, or -NOAUTH from a server whose default user is off (an ACL test): either way it answers.
            return read > 0 && (buffer[0] == (byte)'+' || buffer.AsSpan(0, read).StartsWith("-NOAUTH"u8));
        }
        catch (Exception ex) when (ex is SocketException or IOException or TimeoutException)
        {
            return false;
        }
    }
}

internal static class ExecutableFinder
{
    public static string? Find(string name)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        // Debian's postgresql packages keep initdb and pg_ctl out of PATH, under /usr/lib/postgresql/<version>/bin.
        var postgres = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").OrderDescending().Select(d => Path.Combine(d, "bin"))
            : [];
        string[] extra = ["/usr/bin", "/usr/local/bin", "/usr/sbin", .. postgres];
        return path.Split(Path.PathSeparator).Concat(extra)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);
    }
}
