using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// A decision whose reply was lost with its connection (Redis killed, a network cut): the proxy answered
/// 503, and cannot tell from the reply whether the script ran. With the ledger on, an admitted debit left
/// a usage event in the same atomic step, so the event says it: it is still in the pool's stream, or, once
/// flushed (an event leaves the stream only after its batch is committed), in the ledger. Looked for only
/// after the decision's deadline, when the script can no longer run.
/// </summary>
internal sealed class LostReplies(RedisKeys keys, IUsageHistory history)
{
    /// <summary>
    /// How far either side of the decision's span an event's time is looked for: the span comes from the
    /// proxy's estimate of the store's clock, which errs early by about a reply's latency. Every event of
    /// the span and margin is read: at 10,000 decisions a second, about 2,000 entries per lookup.
    /// </summary>
    private static readonly TimeSpan Margin = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// The decision's debit, found from its usage event; null when it was not admitted (no event between
    /// <paramref name="fromMs"/> and <paramref name="toMs"/>, on the store's clock).
    /// </summary>
    public async Task<LandedDebit?> FindAsync(IDatabase database, QuotaDebit debit, UsageContext usage, long fromMs, long toMs)
    {
        var from = fromMs - (long)Margin.TotalMilliseconds;
        var to = toMs + (long)Margin.TotalMilliseconds;
        var tail = $" {debit.Tenant.Path.Length} {usage.Route.Length} {debit.Tenant.Path}{usage.Route}{usage.RequestId}";
        var entries = await database.StreamRangeAsync(keys.EventStream(debit.Pool), $"{from}-0", $"{to}-18446744073709551615").ConfigureAwait(false);
        foreach (var entry in entries)
        {
            var packed = (string?)entry["e"] ?? "";
            var fields = packed.Split(' ', 4);
            if (fields.Length == 4 && fields[2] is "debit" or "overage" && packed.EndsWith(tail, StringComparison.Ordinal))
            {
                return new LandedDebit(long.Parse(fields[0], System.Globalization.CultureInfo.InvariantCulture), entry.Id.ToString());
            }
        }

        // Not in the stream: never written, or flushed and trimmed, which happens only after the ledger committed it.
        var billedAt = await history.DebitedAtAsync(debit.Pool.Name, debit.Tenant.Path, usage.Route, usage.RequestId, DateTimeOffset.FromUnixTimeMilliseconds(from), DateTimeOffset.FromUnixTimeMilliseconds(to), CancellationToken.None).ConfigureAwait(false);
        return billedAt is { } at ? new LandedDebit(at, StreamId: null) : null;
    }
}
