using System.Net;
using System.Net.Sockets;

namespace QuotaProxy.Testing;

public static class LoopbackPorts
{
    /// <summary>
    /// A TCP port on 127.0.0.1 that nothing listens on right now, below the kernel's ephemeral range and
    /// never handed out before in this process. A server a test stops and starts again (PostgreSQL, Redis)
    /// gets its port back: an ephemeral port could meanwhile be the source port of some client connection,
    /// or be handed to another test, and the restart would fail to bind (seen once: pg_ctl "could not start
    /// server" in the PostgreSQL-down test under the suite's load).
    /// </summary>
    public static int Free()
    {
        var (low, _) = EphemeralRange.Value;
        var floor = Math.Max(1024, low - 12_000);
        for (var attempt = 0; attempt < 1000; attempt++)
        {
            var port = Random.Shared.Next(floor, low);
            lock (Issued)
            {
                if (!Issued.Add(port))
                {
                    continue;
                }
            }

            try
            {
                using var listener = new TcpListener(IPAddress.Loopback, port);
                listener.Start();
                return port;
            }
            catch (SocketException)
            {
                // taken by something else: try another
            }
        }

        throw new InvalidOperationException($"No free loopback port between {floor} and {low}.");
    }

    private static readonly HashSet<int> Issued = [];

    /// <summary>The kernel's ephemeral port range (<c>ip_local_port_range</c>); Linux's default when it cannot be read.</summary>
    private static readonly Lazy<(int Low, int High)> EphemeralRange = new(() =>
    {
        try
        {
            var parts = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            return (int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture), int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return (32768, 60999);
        }
    });

    /// <summary>Polls <paramref name="isAccepting"/> until it returns <paramref name="accepting"/>, or throws after <paramref name="seconds"/>.</summary>
    /// <summary>Whether something accepts TCP connections on 127.0.0.1:<paramref name="port"/> now.</summary>
    public static async Task<bool> IsListeningAsync(int port)
    {
        try
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public static async Task WaitUntilAsync(Func<Task<bool>> isAccepting, bool accepting, string what, int seconds)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            if (await isAccepting() == accepting)
            {
                return;
            }

            await Task.Delay(25);
        }

        throw new TimeoutException($"{what} did not become {(accepting ? "ready" : "unreachable")} in {seconds} s.");
    }
}
