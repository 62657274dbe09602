using Dapper;
using Npgsql;
using StackExchange.Redis;

namespace QuotaProxy.Testing;

/// <summary>Waits for the ledger flushers: the events have left Redis and the ledger holds the credits expected.</summary>
public static class LedgerDrain
{
    /// <summary>
    /// Polls until every one of <paramref name="streams"/> is empty and <c>usage_events</c> holds
    /// <paramref name="expectedCredits"/> credits in all; returns the ledger's credits and events then. After
    /// <paramref name="within"/> (default 30 s) it throws with what it last saw.
    /// </summary>
    public static async Task<(long Credits, long Events)> UntilAsync(IDatabase redis, string ledger, long expectedCredits, IReadOnlyList<RedisKey> streams, TimeSpan? within = null)
    {
        var seen = await Poll.UntilAsync(
            $"{expectedCredits} credits in the ledger and {string.Join(", ", streams)} empty",
            async () => (Ledger: await ReadAsync(ledger), Waiting: await WaitingAsync(redis, streams)),
            state => state.Ledger.Credits == expectedCredits && state.Waiting == 0,
            within ?? TimeSpan.FromSeconds(30));
        return seen.Ledger;
    }

    private static async Task<long> WaitingAsync(IDatabase redis, IReadOnlyList<RedisKey> streams)
    {
        long waiting = 0;
        foreach (var stream in streams)
        {
            waiting += await redis.StreamLengthAsync(stream);
        }

        return waiting;
    }

    /// <summary>The ledger's billed credits and events (an operator's resets and voided lease credits are not billed); zero before a flusher has created the schema.</summary>
    public static async Task<(long Credits, long Events)> ReadAsync(string ledger)
    {
        try
        {
            await using var connection = new NpgsqlConnection(ledger);
            await connection.OpenAsync();
            return await connection.QuerySingleAsync<(long, long)>("SELECT coalesce(sum(credits), 0)::bigint, count(*) FROM usage_events WHERE kind NOT IN ('reset', 'lease')");
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return (0, 0); // no flusher has migrated yet
        }
    }
}
