using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>The C# side of <c>debit.lua</c>: owns the order of its KEYS and ARGV and reads its reply.</summary>
internal static class DebitScript
{
    public static readonly string Source = LoadEmbedded("debit.lua");

    /// <summary>SHA-1 of <see cref="Source"/>: the hot path sends EVALSHA with it, so neither side hashes the script per call.</summary>
    public static readonly byte[] Sha1 = SHA1.HashData(Encoding.UTF8.GetBytes(Source));

    /// <summary>close.lua: closes a pool after a vendor 429 (rare, so sent as a plain EVAL by text).</summary>
    public static readonly string CloseSource = LoadEmbedded("close.lua");

    /// <summary>adjust.lua: refunds or settles an admitted request's charge after its response.</summary>
    public static readonly string AdjustSource = LoadEmbedded("adjust.lua");

    /// <summary>ack.lua: acknowledges and deletes a committed ledger batch in one step.</summary>
    public static readonly string AckSource = LoadEmbedded("ack.lua");

    /// <summary>release.lua: ends a MaxInFlight lease when its response ends.</summary>
    public static readonly string ReleaseSource = LoadEmbedded("release.lua");


    public const string ClockSkewError = "QP_CLOCK_SKEW";

    /// <param name="nowMicros">The caller's clock in Unix µs, or 0 to let the Redis server's clock decide.</param>
    /// <param name="leaseId">The request's lease id when a node on a path has MaxInFlight, else null.</param>
    /// <param name="usage">The route, request id and idempotency key of the request, or null.</param>
    /// <param name="events">Whether the ledger is on: append usage events.</param>
    public static (RedisKey[] Keys, RedisValue[] Args) Arguments(RedisKeys keys, IReadOnlyList<QuotaDebit> debits, DateTimeOffset proxyNow, long nowMicros, string? leaseId, long leaseMs, UsageContext? usage = null, bool events = false, long maxBacklog = 0)
    {
        events = events && usage is not null;
        var idempotencyKey = usage?.IdempotencyKey;
        if (debits.Count == 1 && nowMicros == 0 && leaseId is null && !events && idempotencyKey is null)
        {
            return (Keys(keys, debits, 0, events: false), SharedArguments(keys, debits[0], proxyNow, leaseMs, maxBacklog));
        }

        var length = HeaderLength;
        var leaseKeys = 0;
        for (var i = 0; i < debits.Count; i++)
        {
            var node = NodeScript(keys, debits[i]);
            length += BlockHeaderLength + node.Fields.Length;
            leaseKeys += node.LeaseKeys.Length;
        }

        var args = new RedisValue[length];
        args[0] = nowMicros == 0 ? Header(debits[0].Cost, debits.Count, leaseMs, maxBacklog) : Pack([nowMicros, debits[0].Cost, debits.Count, leaseMs, maxBacklog]);
        args[1] = leaseId ?? "";
        args[2] = events ? usage!.Route : "";
        args[3] = events ? debits[0].Tenant.Path : "";
        args[4] = events ? usage!.RequestId : "";
        args[5] = idempotencyKey is null ? "" : InProcessQuotaStore.IdempotencyField(debits[0].Tenant, idempotencyKey);
        var at = HeaderLength;
        for (var i = 0; i < debits.Count; i++)
        {
            var node = NodeScript(keys, debits[i]);
            args[at] = WindowBlock(node, debits[i].Pool, proxyNow).Packed;
            args[at + 1] = node.Format;
            args[at + 2] = node.Records;
            node.Fields.CopyTo(args, at + BlockHeaderLength);
            at += BlockHeaderLength + node.Fields.Length;
        }

        return (Keys(keys, debits, leaseKeys, events), args);
    }

    // The packed header with the server's clock: the same for every request of one cost on as many pools.
    private static readonly ConcurrentDictionary<(long Cost, int Pools, long LeaseMs, long MaxBacklog), RedisValue> Headers = new();

    private static RedisValue Header(long cost, int pools, long leaseMs, long maxBacklog) =>
        Headers.GetOrAdd((cost, pools, leaseMs, maxBacklog), static key => Pack([0, key.Cost, key.Pools, key.LeaseMs, key.MaxBacklog]));

    /// <summary>
    /// A pool's packed window: for a calendar window, the window the proxy's clock sees and both neighbours
    /// (the server picks by its clock); for a fixed one, its length and the zone's offset. Packed once per
    /// window (or offset) and kept with the node's arguments.
    /// </summary>
    private static PackedWindow WindowBlock(NodeArguments node, PoolDefinition pool, DateTimeOffset proxyNow)
    {
        var cached = node.Window;
        if (pool.Window.IsCalendar)
        {
            var windows = pool.CalendarAround(proxyNow);
            if (cached is null || !ReferenceEquals(cached.Calendar, windows))
            {
                cached = new PackedWindow(windows, 0, Pack([0, 0, windows.Previous.StartMs, windows.Current.StartMs, windows.Current.EndMs, windows.Next.EndMs]));
                node.Window = cached;
            }
        }
        else
        {
            var offsetMs = pool.Window.FixedOffsetMilliseconds(proxyNow, pool.TimeZone);
            if (cached is null || cached.OffsetMs != offsetMs)
            {
                cached = new PackedWindow(null, offsetMs, Pack([(long)pool.Window.FixedLength.TotalMilliseconds, offsetMs, 0, 0, 0, 0]));
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
    private static RedisValue[] SharedArguments(RedisKeys keys, QuotaDebit debit, DateTimeOffset proxyNow, long leaseMs, long maxBacklog)
    {
        var node = NodeScript(keys, debit);
        var window = WindowBlock(node, debit.Pool, proxyNow);
        var shared = node.Shared;
        if (shared is not null && ReferenceEquals(shared.Window, window) && shared.Cost == debit.Cost && shared.LeaseMs == leaseMs && shared.MaxBacklog == maxBacklog)
        {
            return shared.Args;
        }

        var args = new RedisValue[HeaderLength + BlockHeaderLength + node.Fields.Length];
        args[0] = Header(debit.Cost, 1, leaseMs, maxBacklog);
        args[1] = args[2] = args[3] = args[4] = args[5] = "";
        args[HeaderLength] = window.Packed;
        args[HeaderLength + 1] = node.Format;
        args[HeaderLength + 2] = node.Records;
        node.Fields.CopyTo(args, HeaderLength + BlockHeaderLength);
        node.Shared = new SharedArgs(window, debit.Cost, leaseMs, maxBacklog, args);
        return args;
    }

    /// <summary>KEYS and ARGV of adjust.lua for an admitted route decision.</summary>
    public static (RedisKey[] Keys, RedisValue[] Args) AdjustArguments(RedisKeys keys, IReadOnlyList<QuotaDebit> debits, RouteDecision decision, long delta, Ledger.UsageKind kind, UsageContext? usage)
    {
        var redisKeys = new List<RedisKey>();
        var args = new List<RedisValue> { delta, debits.Count, usage?.Route ?? "", usage is null ? "" : debits[0].Tenant.Path, usage?.RequestId ?? "", Ledger.UsageEvent.KindName(kind) };
        for (var i = 0; i < debits.Count; i++)
        {
            redisKeys.Add(keys.PoolUsage(debits[i].Pool));
            var node = NodeScript(keys, debits[i]);
            args.Add(decision.Pools[i].Window.StartMs);
            args.Add(node.Format);
            args.Add(node.Records);
            args.AddRange(node.Fields);
        }

        if (usage is not null)
        {
            redisKeys.AddRange(debits.Select(d => keys.EventStream(d.Pool)));
        }

        return ([.. redisKeys], [.. args]);
    }

    /// <summary>KEYS of release.lua: the lease sets of every node that holds the lease.</summary>
    public static RedisKey[] LeaseKeys(RedisKeys keys, QuotaLease lease) => [.. lease.Debits.SelectMany(d => NodeScript(keys, d).LeaseKeys)];

    public static RouteDecision Read(RedisResult result, IReadOnlyList<QuotaDebit> debits, string? leaseId)
    {
        var packed = (byte[])result!;
        var reply = new ReplyReader(packed);
        var decisions = new QuotaDecision[debits.Count];
        for (var i = 0; i < debits.Count; i++)
        {
            var at = 2 + (i * PoolReplyLength);
            var tenant = debits[i].Tenant;
            decisions[i] = new QuotaDecision(
                Admitted: reply[at] == 1,
                LimitedBy: (QuotaLimitedBy)reply[at + 1],
                LimitingNode: NodeAt(tenant, reply[at + 2]),
                Used: reply[at + 3],
                PoolUsed: reply[at + 12],
                Limit: tenant.EffectiveLimit,
                Remaining: reply[at + 4],
                Window: new WindowBounds(reply[at + 5], reply[at + 6]),
                NowMs: reply[at + 7],
                OverageCredits: reply[at + 8],
                SoftLimitNode: NodeAt(tenant, reply[at + 9]),
                SoftLimitCrossed: reply[at + 10] == 1,
                Shadow: reply[at + 11] == 1,
                RetryAfterMicros: reply[at + 13],
                Replayed: reply[at + 14] == 1);
        }

        var admitted = reply[0] == 1;
        return new RouteDecision(admitted, (int)reply[1], decisions, admitted && leaseId is not null ? new QuotaLease(leaseId, debits) : null);
    }

    /// <summary>The reply's numbers: little-endian doubles, each an integer.</summary>
    private readonly ref struct ReplyReader(byte[] packed)
    {
        private readonly ReadOnlySpan<byte> _packed = packed;

        public long this[int index] => (long)BinaryPrimitives.ReadDoubleLittleEndian(_packed[(index * sizeof(double))..]);
    }

    /// <summary>The packed numbers (now, cost, the number of pools, the lease lifetime, the ledger's backlog bound), the lease id, the route, tenant and request id of the ledger's events, the idempotency field.</summary>
    private const int HeaderLength = 6;

    /// <summary>Per pool: the packed window (length, offset, the four calendar bounds), the records' format and the records; then the fields.</summary>
    private const int BlockHeaderLength = 3;

    private const int PoolReplyLength = 15;

    /// <summary>
    /// What a decision on one tenant node sends: its path's numbers packed as little-endian doubles with the
    /// <c>struct.unpack</c> format that reads them all, the hash fields the script reads and writes, and its
    /// lease sets.
    /// </summary>
    private sealed record NodeArguments(RedisKeys Owner, RedisValue Format, RedisValue Records, RedisValue[] Fields, RedisKey[] LeaseKeys)
    {
        /// <summary>The pool's window as last packed for this node; replaced, never changed, when the window moves on.</summary>
        public volatile PackedWindow? Window;

        /// <summary>The last shared ARGV (<see cref="SharedArguments"/>); replaced, never changed.</summary>
        public volatile SharedArgs? Shared;
    }

    private sealed record SharedArgs(PackedWindow Window, long Cost, long LeaseMs, long MaxBacklog, RedisValue[] Args);

    /// <param name="Calendar">The calendar windows it was packed from (the pool keeps one instance per window), or null for a fixed window.</param>
    /// <param name="OffsetMs">A fixed window's zone offset it was packed with.</param>
    private sealed record PackedWindow(CalendarWindows? Calendar, long OffsetMs, RedisValue Packed);

    // Built once per tenant node and kept on the node itself (a ConditionalWeakTable here cost every GC a
    // scan of one dependent handle per tenant: with 10,000 tenants, ~40 µs on a decision's p50,
    // bench/siblings.sh). Two threads may build it at once; both build the same thing. The lease keys carry
    // the store's key prefix, so a node used by another store (tests) is built again for it.
    private static NodeArguments NodeScript(RedisKeys keys, QuotaDebit debit)
    {
        if (debit.Tenant.StoreCache is NodeArguments cached && cached.Owner == keys)
        {
            return cached;
        }

        var (numbers, fields) = BuildPathArguments(debit.Tenant);
        var built = new NodeArguments(
            keys,
            "<" + new string('d', numbers.Count),
            Pack(numbers),
            fields,
            [.. debit.Tenant.PathFromRoot().Where(n => n.MaxInFlight is not null).Select(n => keys.LeaseKey(debit.Pool, n))]);
        debit.Tenant.StoreCache = built;
        return built;
    }

    /// <summary>
    /// Numbers for the script as little-endian doubles, which it reads with one <c>struct.unpack</c>: a
    /// decimal string per number cost Redis a <c>tonumber</c> each (about 0.1 µs apiece, a third of the
    /// script's time) and the client a formatting each. Lua numbers are doubles either way (tonumber gave
    /// the same values): Unix µs and ms, and credits up to 2^53, arrive exact.
    /// </summary>
    private static byte[] Pack(IReadOnlyList<long> numbers)
    {
        var packed = new byte[numbers.Count * sizeof(double)];
        for (var i = 0; i < numbers.Count; i++)
        {
            BinaryPrimitives.WriteDoubleLittleEndian(packed.AsSpan(i * sizeof(double)), numbers[i]);
        }

        return packed;
    }

    /// <summary>Two keys per pool, usage then state, then every pool's event stream when the ledger is on, then every pool's lease sets; one pool's keys without leases are built once and shared.</summary>
    private static RedisKey[] Keys(RedisKeys keys, IReadOnlyList<QuotaDebit> debits, int leaseKeys, bool events)
    {
        if (debits.Count == 1 && leaseKeys == 0)
        {
            return events ? keys.PoolKeysWithEvents(debits[0].Pool) : keys.PoolKeys(debits[0].Pool);
        }

        var all = new RedisKey[(debits.Count * (events ? 3 : 2)) + leaseKeys];
        for (var i = 0; i < debits.Count; i++)
        {
            keys.PoolKeys(debits[i].Pool).CopyTo(all, i * 2);
            if (events)
            {
                all[(debits.Count * 2) + i] = keys.EventStream(debits[i].Pool);
            }
        }

        var at = debits.Count * (events ? 3 : 2);
        foreach (var debit in debits)
        {
            var leases = NodeScript(keys, debit).LeaseKeys;
            leases.CopyTo(all, at);
            at += leases.Length;
        }

        return all;
    }

    /// <summary>One pool's block after its window: the numbers (the count of fields, the depth, one record per node from the pool down, the rates, the leases) and the fields (see debit.lua).</summary>
    private static (List<long> Numbers, RedisValue[] Fields) BuildPathArguments(QuotaNode tenant)
    {
        var path = tenant.PathFromRoot().ToList();
        var fields = new List<string>();
        int Read(string? field)
        {
            if (field is null)
            {
                return 0;
            }

            var at = fields.IndexOf(field);
            if (at < 0)
            {
                fields.Add(field);
                at = fields.Count - 1;
            }

            return at + 1;
        }

        var records = new List<long>();
        foreach (var node in path)
        {
            records.Add(Read(node.UsageField));
            records.Add(node.Limit);
            records.Add(node.Overage);
            records.Add(node.SoftLimit ?? -1);
            records.Add(node.Mode == QuotaMode.Shadow ? 1 : 0);
            if (node.IsRoot)
            {
                continue;
            }

            var parent = node.Parent!;
            records.Add(node.Guaranteed);
            records.Add(node.Allocation);
            // Aggregates that are always zero are neither read nor written.
            records.Add(Read(parent.ChildGuaranteedSum > 0 ? parent.GuaranteeAggregateField : null));
            records.Add(Read(node.Allocation > node.Guaranteed ? node.LevelField : null));
            records.Add(parent.ChildGuaranteedSum);
            var levels = node.HigherLevels.Where(l => l.AllocationAboveGuaranteed > 0).ToList();
            records.Add(levels.Count);
            foreach (var level in levels)
            {
                records.Add(Read(level.Field));
                records.Add(level.AllocationAboveGuaranteed);
            }
        }

        // The nodes with a rate, pool first: index on the path, interval, capacity, shadow; their state
        // fields follow the usage fields in ARGV.
        var rates = path.Where(n => n.Rate is not null).ToList();
        records.Add(rates.Count);
        foreach (var node in rates)
        {
            records.Add(node.Depth);
            records.Add(node.Rate!.IntervalMicros);
            records.Add(node.Rate.CapacityMicros);
            records.Add(node.Mode == QuotaMode.Shadow ? 1 : 0);
        }

        // The nodes with a MaxInFlight, pool first: index on the path, j (its lease set is the j-th of this
        // path's), MaxInFlight, shadow.
        var leased = path.Where(n => n.MaxInFlight is not null).ToList();
        records.Add(leased.Count);
        for (var j = 0; j < leased.Count; j++)
        {
            records.Add(leased[j].Depth);
            records.Add(j + 1);
            records.Add(leased[j].MaxInFlight!.Value);
            records.Add(leased[j].Mode == QuotaMode.Shadow ? 1 : 0);
        }

        return ([fields.Count, tenant.Depth, .. records], [.. fields.Select(f => (RedisValue)f), .. rates.Select(n => (RedisValue)n.RateField)]);
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

    private static string LoadEmbedded(string fileName)
    {
        var name = $"QuotaProxy.Enforcement.Redis.Scripts.{fileName}";
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"Embedded script {name} is missing from the build.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
