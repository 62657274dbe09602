using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>The C# side of <c>debit.lua</c>: owns the order of its KEYS and ARGV and reads its reply.</summary>
internal static class DebitScript
{
    public static readonly EmbeddedScript Script = new("debit.lua");

    public const string ClockSkewError = "QP_CLOCK_SKEW";

    /// <param name="nowMicros">The caller's clock in Unix µs, or 0 to let the Redis server's clock decide.</param>
    /// <param name="leaseId">The request's lease id when a node on a path has MaxInFlight, else null.</param>
    /// <param name="usage">The route, request id and idempotency key of the request, or null.</param>
    /// <param name="events">Whether the ledger is on: append usage events.</param>
    /// <param name="deadlineMicros">The Redis server's Unix µs after which the call must debit nothing, or 0 for none.</param>
    /// <param name="peek">Decide, write nothing: the question of <c>POST /quota/v1/decide</c>.</param>
    public static (RedisKey[] Keys, RedisValue[] Args) Arguments(
        RedisKeys keys, IReadOnlyList<QuotaDebit> debits, DateTimeOffset proxyNow, long nowMicros, string? leaseId, long leaseMs, UsageContext? usage = null, bool events = false, long maxBacklog = 0, long deadlineMicros = 0, bool peek = false)
    {
        events = events && usage is not null;
        var claim = usage?.Idempotency;
        if (debits.Count == 1 && nowMicros == 0 && leaseId is null && !events && claim is null && !peek)
        {
            return (Keys(keys, debits, 0, events: false), SharedArguments(keys, debits[0], proxyNow, leaseMs, maxBacklog, deadlineMicros));
        }

        var length = DebitLayout.ArgvHeaderLength;
        var leaseKeys = 0;
        for (var i = 0; i < debits.Count; i++)
        {
            var node = PathArguments.For(keys, debits[i]);
            length += DebitLayout.BlockHeaderLength + node.Fields.Length;
            leaseKeys += node.LeaseKeys.Length;
        }

        var args = new RedisValue[length];
        args[DebitLayout.ArgvNumbers] = peek
            ? PathArguments.Pack([nowMicros, debits[0].Cost, debits.Count, leaseMs, maxBacklog, deadlineMicros, 1])
            : nowMicros == 0 && deadlineMicros == 0
                ? Header(debits[0].Cost, debits.Count, leaseMs, maxBacklog)
                : PathArguments.Pack([nowMicros, debits[0].Cost, debits.Count, leaseMs, maxBacklog, deadlineMicros]);
        args[DebitLayout.ArgvLeaseId] = leaseId ?? "";
        args[DebitLayout.ArgvRoute] = events ? usage!.Route : "";
        args[DebitLayout.ArgvTenant] = events ? debits[0].Tenant.Path : "";
        args[DebitLayout.ArgvRequestId] = events ? usage!.RequestId : "";
        args[DebitLayout.ArgvIdempotency] = claim is null
            ? ""
            : string.Create(CultureInfo.InvariantCulture, $"{InProcessQuotaStore.IdempotencyField(debits[0].Tenant, claim.Key)} {claim.Fingerprint} {claim.MaxReplays}");
        var at = DebitLayout.ArgvHeaderLength;
        for (var i = 0; i < debits.Count; i++)
        {
            var node = PathArguments.For(keys, debits[i]);
            args[at + DebitLayout.BlockWindow] = WindowBlock(node, debits[i].Pool, proxyNow).Packed;
            args[at + DebitLayout.BlockFormat] = node.Format;
            args[at + DebitLayout.BlockRecords] = node.Records;
            node.Fields.CopyTo(args, at + DebitLayout.BlockHeaderLength);
            at += DebitLayout.BlockHeaderLength + node.Fields.Length;
        }

        return (Keys(keys, debits, leaseKeys, events), args);
    }

    // The packed header with the server's clock: the same for every request of one cost on as many pools.
    private static readonly ConcurrentDictionary<(long Cost, int Pools, long LeaseMs, long MaxBacklog), RedisValue> Headers = new();

    private static RedisValue Header(long cost, int pools, long leaseMs, long maxBacklog) =>
        Headers.GetOrAdd((cost, pools, leaseMs, maxBacklog), static key => PathArguments.Pack([0, key.Cost, key.Pools, key.LeaseMs, key.MaxBacklog, 0]));

    /// <summary>
    /// A pool's packed window: for a calendar window, the window the proxy's clock sees and both neighbours
    /// (the server picks by its clock); for a fixed one, its length and the zone's offset. Packed once per
    /// window (or offset) and kept with the node's arguments.
    /// </summary>
    private static PackedWindow WindowBlock(PathArguments node, PoolDefinition pool, DateTimeOffset proxyNow)
    {
        var cached = node.Window;
        if (pool.Window.IsCalendar)
        {
            var windows = pool.CalendarAround(proxyNow);
            if (cached is null || !ReferenceEquals(cached.Calendar, windows))
            {
                cached = new PackedWindow(windows, 0, PathArguments.Pack([0, 0, windows.Previous.StartMs, windows.Current.StartMs, windows.Current.EndMs, windows.Next.EndMs]));
                node.Window = cached;
            }
        }
        else
        {
            var offsetMs = pool.Window.FixedOffsetMilliseconds(proxyNow, pool.TimeZone);
            if (cached is null || cached.OffsetMs != offsetMs)
            {
                cached = new PackedWindow(null, offsetMs, PathArguments.Pack([(long)pool.Window.FixedLength.TotalMilliseconds, offsetMs, 0, 0, 0, 0]));
                node.Window = cached;
            }
        }

        return cached;
    }

    /// <summary>
    /// ARGV of the commonest decision (one pool, the server's clock, no lease, no ledger event, no
    /// idempotency key): nothing in it is the request's own, so one array serves every such request on the
    /// node until its window or cost changes. StackExchange.Redis only reads it.
    /// </summary>
    /// <remarks>
    /// The deadline is rounded down to the millisecond, so that every request of the same millisecond shares
    /// the array too: a deadline that errs early by less than a millisecond.
    /// </remarks>
    private static RedisValue[] SharedArguments(RedisKeys keys, QuotaDebit debit, DateTimeOffset proxyNow, long leaseMs, long maxBacklog, long deadlineMicros)
    {
        var node = PathArguments.For(keys, debit);
        var window = WindowBlock(node, debit.Pool, proxyNow);
        var deadline = deadlineMicros - (deadlineMicros % 1000);
        var shared = node.Shared;
        if (shared is not null && ReferenceEquals(shared.Window, window) && shared.Cost == debit.Cost && shared.LeaseMs == leaseMs && shared.MaxBacklog == maxBacklog
            && shared.DeadlineMicros == deadline)
        {
            return shared.Args;
        }

        var args = new RedisValue[DebitLayout.ArgvHeaderLength + DebitLayout.BlockHeaderLength + node.Fields.Length];
        args[DebitLayout.ArgvNumbers] = deadline == 0 ? Header(debit.Cost, 1, leaseMs, maxBacklog) : PathArguments.Pack([0, debit.Cost, 1, leaseMs, maxBacklog, deadline]);
        args[DebitLayout.ArgvLeaseId] = args[DebitLayout.ArgvRoute] = args[DebitLayout.ArgvTenant] = args[DebitLayout.ArgvRequestId] = args[DebitLayout.ArgvIdempotency] = "";
        args[DebitLayout.ArgvHeaderLength + DebitLayout.BlockWindow] = window.Packed;
        args[DebitLayout.ArgvHeaderLength + DebitLayout.BlockFormat] = node.Format;
        args[DebitLayout.ArgvHeaderLength + DebitLayout.BlockRecords] = node.Records;
        node.Fields.CopyTo(args, DebitLayout.ArgvHeaderLength + DebitLayout.BlockHeaderLength);
        node.Shared = new SharedDebitArguments(window, debit.Cost, leaseMs, maxBacklog, deadline, args);
        return args;
    }

    public static RouteDecision Read(RedisResult result, IReadOnlyList<QuotaDebit> debits, string? leaseId)
    {
        var packed = (byte[])result!;
        var reply = new ReplyReader(packed);
        var decisions = new QuotaDecision[debits.Count];
        for (var i = 0; i < debits.Count; i++)
        {
            var at = DebitLayout.ReplyHeadLength + (i * DebitLayout.PoolReplyLength);
            var tenant = debits[i].Tenant;
            decisions[i] = new QuotaDecision(
                Admitted: reply[at + DebitLayout.ReplyPoolAdmitted] == 1,
                LimitedBy: (QuotaLimitedBy)reply[at + DebitLayout.ReplyLimitedBy],
                LimitingNode: NodeAt(tenant, reply[at + DebitLayout.ReplyLimitingNode]),
                Used: reply[at + DebitLayout.ReplyUsed],
                PoolUsed: reply[at + DebitLayout.ReplyPoolUsed],
                Limit: tenant.EffectiveLimit,
                Remaining: reply[at + DebitLayout.ReplyRemaining],
                Window: new WindowBounds(reply[at + DebitLayout.ReplyWindowStart], reply[at + DebitLayout.ReplyWindowEnd]),
                NowMs: reply[at + DebitLayout.ReplyNow],
                OverageCredits: reply[at + DebitLayout.ReplyOverage],
                SoftLimitNode: NodeAt(tenant, reply[at + DebitLayout.ReplySoftLimitNode]),
                SoftLimitCrossed: reply[at + DebitLayout.ReplySoftLimitCrossed] == 1,
                Shadow: reply[at + DebitLayout.ReplyShadow] == 1,
                RetryAfterMicros: reply[at + DebitLayout.ReplyRetryAfterMicros],
                Replayed: reply[at + DebitLayout.ReplyReplayed] == 1);
        }

        var admitted = reply[DebitLayout.ReplyAdmitted] == 1;
        return new RouteDecision(admitted, (int)reply[DebitLayout.ReplyLimitingPool], decisions, admitted && leaseId is not null ? new QuotaLease(leaseId, debits) : null);
    }

    /// <summary>The reply's numbers: little-endian doubles, each an integer.</summary>
    private readonly ref struct ReplyReader(byte[] packed)
    {
        private readonly ReadOnlySpan<byte> _packed = packed;

        public long this[int index] => (long)BinaryPrimitives.ReadDoubleLittleEndian(_packed[(index * sizeof(double))..]);
    }




    /// <summary>
    /// Two keys per pool, usage then state, then every pool's event stream when the ledger is on, then every
    /// pool's lease sets, and last the tag's baseline; one pool's keys without leases are built once and shared.
    /// </summary>
    private static RedisKey[] Keys(RedisKeys keys, IReadOnlyList<QuotaDebit> debits, int leaseKeys, bool events)
    {
        if (debits.Count == 1 && leaseKeys == 0)
        {
            return keys.DebitKeys(debits[0].Pool, events);
        }

        var all = new RedisKey[(debits.Count * (events ? 3 : 2)) + leaseKeys + 1];
        for (var i = 0; i < debits.Count; i++)
        {
            // Usage and state, the first two of the pool's shared keys: one lookup, as before the baseline key.
            Array.Copy(keys.DebitKeys(debits[i].Pool, events: false), 0, all, i * 2, 2);
            if (events)
            {
                all[(debits.Count * 2) + i] = keys.EventStream(debits[i].Pool);
            }
        }

        var at = debits.Count * (events ? 3 : 2);
        foreach (var debit in debits)
        {
            var leases = PathArguments.For(keys, debit).LeaseKeys;
            leases.CopyTo(all, at);
            at += leases.Length;
        }

        all[at] = keys.Baseline(debits[0].Pool.HashTag);
        return all;
    }

    /// <summary>The node at a reply index: 0 the pool, i the i-th tenant from the top of the path; -1 none.</summary>
    private static QuotaNode? NodeAt(QuotaNode tenant, long index)
    {
        if (index < 0)
        {
            return null;
        }

        var node = tenant;
        while (node.Depth > index)
        {
            node = node.Parent!;
        }

        return node;
    }


}
