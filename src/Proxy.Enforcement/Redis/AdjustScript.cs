using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>The C# side of <c>adjust.lua</c>: changes an admitted request's charge (a refund or a settlement) on every node it was charged to.</summary>
internal static class AdjustScript
{
    public static readonly EmbeddedScript Script = new("adjust.lua");

    /// <param name="usage">The route and request id of the ledger's event; null when the ledger is off.</param>
    /// <param name="operationId">With one, the adjustment applies once however often it is sent.</param>
    /// <returns>How many of the route's pools had their counters changed (a pool whose window has moved on keeps them; a repeated operation changes none).</returns>
    public static Task<int> EvaluateAsync(
        IDatabase database, RedisKeys keys, IReadOnlyList<QuotaDebit> debits, RouteDecision decision, long delta, UsageKind kind, UsageContext? usage, string? operationId = null) =>
        EvaluateAsync(database, keys, debits, [.. decision.Pools.Select(pool => pool.Window.StartMs)], delta, kind, usage, operationId);

    /// <param name="windowStarts">Per pool, the start of the window the debit was made in (Unix ms).</param>
    public static async Task<int> EvaluateAsync(
        IDatabase database, RedisKeys keys, IReadOnlyList<QuotaDebit> debits, IReadOnlyList<long> windowStarts, long delta, UsageKind kind, UsageContext? usage, string? operationId = null) =>
        (await EvaluateRawAsync(database, Arguments(keys, debits, windowStarts, delta, kind, usage, operationId)).ConfigureAwait(false)).Count(moved => moved == 1);

    /// <summary>
    /// Gives a debit back (a refund event, once for <paramref name="operationId"/>) only in the Redis that holds
    /// it: its own usage event, <paramref name="debitEventId"/>, must be in the first pool's stream.
    /// </summary>
    /// <returns>False when that event is not there (flushed meanwhile, or never written to this Redis): nothing changed.</returns>
    public static async Task<bool> RefundWhereDebitedAsync(
        IDatabase database, RedisKeys keys, IReadOnlyList<QuotaDebit> debits, IReadOnlyList<long> windowStarts, UsageContext usage, string operationId, string debitEventId) =>
        await EvaluateRawAsync(database, Arguments(keys, debits, windowStarts, -debits[0].Cost, UsageKind.Refund, usage, operationId, debitEventId)).ConfigureAwait(false) is not [-1];

    private static async Task<long[]> EvaluateRawAsync(IDatabase database, (RedisKey[] Keys, RedisValue[] Args) call) =>
        (long[])(await database.ScriptEvaluateAsync(Script.Source, call.Keys, call.Args).ConfigureAwait(false))!;

    /// <summary>KEYS: every pool's usage hash, then with the ledger on every pool's event stream. ARGV: <see cref="DebitLayout"/>'s adjust header and blocks.</summary>
    internal static (RedisKey[] Keys, RedisValue[] Args) Arguments(
        RedisKeys keys, IReadOnlyList<QuotaDebit> debits, IReadOnlyList<long> windowStarts, long delta, UsageKind kind, UsageContext? usage, string? operationId = null, string? debitEventId = null)
    {
        var redisKeys = new List<RedisKey>();
        var args = new List<RedisValue> { delta, debits.Count, usage?.Route ?? "", usage is null ? "" : debits[0].Tenant.Path, usage?.RequestId ?? "", UsageKinds.Name(kind), operationId ?? "", debitEventId ?? "" };
        for (var i = 0; i < debits.Count; i++)
        {
            redisKeys.Add(keys.PoolUsage(debits[i].Pool));
            var path = PathArguments.For(keys, debits[i]);
            var block = new RedisValue[DebitLayout.AdjustBlockHeaderLength];
            block[DebitLayout.BlockWindowStart] = windowStarts[i];
            block[DebitLayout.BlockFormat] = path.Format;
            block[DebitLayout.BlockRecords] = path.Records;
            args.AddRange(block);
            args.AddRange(path.Fields);
        }

        if (usage is not null)
        {
            redisKeys.AddRange(debits.Select(d => keys.EventStream(d.Pool)));
        }

        if (operationId is not null)
        {
            redisKeys.Add(keys.OperationKey(debits[0].Pool, operationId));
        }

        return ([.. redisKeys], [.. args]);
    }
}
