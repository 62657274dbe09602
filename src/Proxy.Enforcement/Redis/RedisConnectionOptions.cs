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
        // The proxy stops waiting at its own store timeout; the client waits much longer for the reply, so
        // that a decision stalled behind a pause still reports how it ended, and one that was admitted is
        // given back. A reply the client gave up on would leave its credits charged for a 503.
        options.AsyncTimeout = Math.Max(15_000, (int)store.Timeout.TotalMilliseconds * 4);
        options.ReconnectRetryPolicy = new LinearRetry(250);
        // Replies are read on the client's own threads, not the thread pool's: under a burst the pool's queue
        // is long, and a reply waiting in it would make a decision Redis took in time miss its timeout.
        options.SocketManager = SocketManager.Shared;
        if (store.TlsCaCertificate is { Length: > 0 } authority)
        {
            // Redis's certificate must chain to this CA (and name the host): a private CA, trusted here only.
            options.TrustIssuer(authority);
        }

        return options;
    }

    /// <summary>The connection string as a log line may show it: without its password (nor anything else secret the client knows of).</summary>
    public static string WithoutSecrets(string connectionString)
    {
        try
        {
            return ConfigurationOptions.Parse(connectionString).ToString(includePassword: false);
        }
        catch (ArgumentException)
        {
            return "(not a Redis connection string)";
        }
    }
}
