using System.Net;
using System.Net.Sockets;

namespace QuotaProxy.Testing;

public static class LoopbackPorts
{
    /// <summary>A TCP port on 127.0.0.1 that nothing listens on right now.</summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Polls <paramref name="isAccepting"/> until it returns <paramref name="accepting"/>, or throws after <paramref name="seconds"/>.</summary>
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
