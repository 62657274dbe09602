using QuotaProxy.Enforcement.Configuration;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

internal static class RedisConnectionOptions
{
    /// <summary>
    /// The connection string plus what an inline quota check needs: start even while Redis is down, never
    /// queue a command behind an outage (a queued debit would land after its request was already answered),
    /// and reconnect quickly by itself when Redis returns.
    /// </summary>
    public static ConfigurationOptions Create(StoreOptions store)
    {
        var options = ConfigurationOptions.Parse(store.Redis!);
        options.AbortOnConnectFail = false;
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.ConnectRetry = 1;
        options.ConnectTimeout = Math.Min(options.ConnectTimeout, 2000);
        options.AsyncTimeout = Math.Max(100, (int)store.Timeout.TotalMilliseconds * 4);
        options.ReconnectRetryPolicy = new LinearRetry(250);
        // Replies are read on the client's own threads, not the thread pool's: under a burst the pool's queue
        // is long, and a reply waiting in it would make a decision Redis took in time miss its timeout.
        options.SocketManager = SocketManager.Shared;
        return options;
    }
}
