using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace QuotaProxy.Testing;

/// <summary>
/// A TCP forwarder on a loopback port to another loopback port, that a test can make lose replies and cut
/// connections: how a reply is lost with its connection (a network cut) while the server did the work.
/// </summary>
public sealed class LoopbackForwarder : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<TcpClient, TcpClient> _connections = new();
    private readonly Task _accepting;
    private volatile bool _dropReplies;
    private volatile bool _dropRequests;

    public LoopbackForwarder(int targetPort)
    {
        _target = targetPort;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public string ConnectionString => $"127.0.0.1:{Port}";

    /// <summary>From now on what the server sends back is thrown away (requests still reach it).</summary>
    public void DropReplies() => _dropReplies = true;

    /// <summary>From now on nothing gets through either way (the connections stay open).</summary>
    public void Blackhole() => _dropRequests = _dropReplies = true;

    /// <summary>Closes every connection open now, and forwards everything again on the next ones.</summary>
    public void CutConnections()
    {
        foreach (var (client, server) in _connections)
        {
            client.Client.Close(0);
            server.Client.Close(0);
        }

        _connections.Clear();
        _dropReplies = _dropRequests = false;
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            var server = new TcpClient();
            try
            {
                await server.ConnectAsync(IPAddress.Loopback, _target, _stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException)
            {
                client.Dispose();
                server.Dispose();
                continue;
            }

            _connections[client] = server;
            _ = PumpAsync(client.GetStream(), server.GetStream(), replies: false);
            _ = PumpAsync(server.GetStream(), client.GetStream(), replies: true);
        }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to, bool replies)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            int read;
            while ((read = await from.ReadAsync(buffer, _stop.Token)) > 0)
            {
                if (!(replies ? _dropReplies : _dropRequests))
                {
                    await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // A cut connection, or the forwarder stopping.
        }
        finally
        {
            from.Socket.Close(0);
            to.Socket.Close(0);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        CutConnections();
        await _accepting;
        _stop.Dispose();
    }
}
