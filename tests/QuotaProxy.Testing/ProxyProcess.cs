using System.Diagnostics;
using System.Net.Sockets;

namespace QuotaProxy.Testing;

/// <summary>
/// The proxy binary (<c>QuotaProxy.dll</c>) in a process of its own, configured on its command line, so
/// that a test can kill it with SIGKILL the way an orchestrator or the kernel would.
/// </summary>
public sealed class ProxyProcess : IDisposable
{
    private readonly Process _process;
    private readonly string _directory;

    private ProxyProcess(Process process, string directory, Uri address)
    {
        _process = process;
        _directory = directory;
        Address = address;
    }

    public Uri Address { get; }

    public static async Task<ProxyProcess> StartAsync(TestProxyConfig config)
    {
        var port = LoopbackPorts.Free();
        // An empty working directory: no appsettings.json but what the test says.
        var directory = Directory.CreateTempSubdirectory("quotaproxy-process-").FullName;
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "QuotaProxy.dll"), $"--urls=http://127.0.0.1:{port}", "--Logging:LogLevel:Default=Warning" },
        };
        foreach (var (key, value) in config.Values)
        {
            start.ArgumentList.Add($"--{key}={value}");
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start.");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var proxy = new ProxyProcess(process, directory, new Uri($"http://127.0.0.1:{port}"));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline && !process.HasExited)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync("127.0.0.1", port);
                return proxy;
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }

        proxy.Dispose();
        throw new TimeoutException($"The proxy process did not listen on {port} within 30 s (exited: {process.HasExited}).");
    }

    /// <summary>SIGKILL: no shutdown, no flush, no acknowledgement.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
