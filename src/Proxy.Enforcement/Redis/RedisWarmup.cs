using System.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// Before the proxy listens: connects to Redis, loads every script on every server (so the first decisions
/// find them), sets every pool's baseline (<see cref="StoreBaselines"/>), and runs decisions through the store on a pool of its own, so that the first requests of a
/// fresh replica meet a compiled decision path, a warm connection and a known Redis clock instead of a
/// 503. Bounded: with Redis away it gives up after <see cref="Budget"/> and the proxy starts anyway (the
/// outage policy answers until Redis is back).
/// </summary>
internal sealed class RedisWarmup(IConnectionMultiplexer connection, IQuotaStore store, StoreBaselines baselines, ILogger<RedisWarmup> logger) : IHostedService
{
    public static readonly TimeSpan Budget = TimeSpan.FromSeconds(5);

    /// <summary>Decisions run, one at a time and then at once: enough for the JIT to compile the path.</summary>
    private const int Decisions = 64;

    /// <summary>The pool warm-up decisions are charged to; its keys expire a minute after its window ends.</summary>
    internal const string PoolName = "(warmup)";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        budget.CancelAfter(Budget);
        try
        {
            // Redis away at start: nothing to warm, and decisions would only wait out their timeouts.
            await connection.GetDatabase().PingAsync().WaitAsync(budget.Token);
            await LoadScriptsAsync().WaitAsync(budget.Token);
            await WarnWithoutPersistenceAsync().WaitAsync(budget.Token);
            // Every configured pool's counters known good (restored from the ledger if Redis lost them).
            await baselines.EnsureConfiguredAsync().WaitAsync(budget.Token);
            // and none short of what the ledger billed (a replica promoted before it had every write).
            await baselines.AuditConfiguredAsync().WaitAsync(budget.Token);
            var debit = new QuotaDebit(Pool.Pools[PoolName], Pool.Pools[PoolName].Nodes["warmup"], 1);
            var decided = 0;
            for (var i = 0; i < Decisions / 2; i++)
            {
                decided += await TryDebitAsync(debit, budget.Token) ? 1 : 0;
            }

            var together = await Task.WhenAll(Enumerable.Range(0, Decisions / 2).Select(_ => TryDebitAsync(debit, budget.Token)));
            decided += together.Count(ok => ok);
            QuotaLog.StoreWarmedUp(logger, decided, Decisions, watch.ElapsedMilliseconds);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Warming up is a courtesy: whatever fails here, the proxy starts.
            QuotaLog.StoreWarmupFailed(logger, watch.ElapsedMilliseconds, ex);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task LoadScriptsAsync()
    {
        EmbeddedScript[] scripts = [DebitScript.Script, AdjustScript.Script, ReleaseScript.Script, RenewScript.Script, CloseScript.Script, ReopenScript.Script, AckScript.Script, BaselineScript.Script];
        foreach (var server in connection.GetServers().Where(server => server.IsConnected))
        {
            foreach (var script in scripts)
            {
                await server.ScriptLoadAsync(script.Source);
            }
        }
    }

    /// <summary>
    /// A Redis that keeps its data only in memory forgets every counter when it restarts, and the window
    /// starts again from zero: said at start, once per server, so that an operator sees it before a restart does.
    /// </summary>
    private async Task WarnWithoutPersistenceAsync()
    {
        foreach (var server in connection.GetServers().Where(server => server.IsConnected && !server.IsReplica))
        {
            // Sent as a plain command: the client's INFO helper wants admin mode, which the proxy does not ask for.
            var info = (string?)await server.ExecuteAsync("INFO", ["persistence"], CommandFlags.None) ?? "";
            if (info.Split('\n').Any(line => line.TrimEnd() == "aof_enabled:0"))
            {
                QuotaLog.StoreWithoutAppendOnlyFile(logger, server.EndPoint.ToString() ?? "?");
            }
        }
    }

    private async Task<bool> TryDebitAsync(QuotaDebit debit, CancellationToken cancellationToken)
    {
        try
        {
            return (await store.DebitAsync([debit], cancellationToken)).Admitted;
        }
        catch (QuotaStoreUnavailableException)
        {
            return false; // a slow first call is what warming up is for
        }
    }

    /// <summary>A pool no configuration names, large enough never to refuse a warm-up decision.</summary>
    private static readonly QuotaModel Pool = QuotaModel.Create(new Dictionary<string, PoolSettings>
    {
        [PoolName] = new(
            QuotaWindow.TryParse("1m", out var window) ? window : throw new InvalidOperationException("1m is a window"),
            TimeZoneInfo.Utc,
            new NodeSettings(long.MaxValue / 4, null, null, null, null, null, QuotaMode.Enforce, null, null, new Dictionary<string, NodeSettings>
            {
                ["warmup"] = new(null, null, null, null, null, null, null, null, null, new Dictionary<string, NodeSettings>()),
            })),
    });
}
