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

    public const string ClockSkewError = "QP_CLOCK_SKEW";

    /// <param name="nowMicros">The caller's clock in Unix µs, or 0 to let the Redis server's clock decide.</param>
    public static (RedisKey[] Keys, RedisValue[] Args) Arguments(RedisKeys keys, in QuotaDebit debit, DateTimeOffset proxyNow, long nowMicros)
    {
        var pool = debit.Pool;
        long lengthMs = 0, offsetMs = 0, previousStart = 0, start = 0, end = 0, nextEnd = 0;
        if (pool.Window.IsCalendar)
        {
            // The proxy offers the window its own clock sees and both neighbours; the server picks by its clock.
            var windows = pool.CalendarAround(proxyNow);
            (previousStart, start, end, nextEnd) = (windows.Previous.StartMs, windows.Current.StartMs, windows.Current.EndMs, windows.Next.EndMs);
        }
        else
        {
            lengthMs = (long)pool.Window.FixedLength.TotalMilliseconds;
            offsetMs = pool.Window.FixedOffsetMilliseconds(proxyNow, pool.TimeZone);
        }

        // The path's records depend on configuration only: built once per tenant node.
        // Kept on the node itself: a ConditionalWeakTable here cost every GC a scan of one dependent handle
        // per tenant (10,000 tenants added ~40 µs to a decision's p50, bench/siblings.sh). Two threads may
        // build it at once; both build the same array.
        var path = debit.Tenant.StoreCache as RedisValue[] ?? (RedisValue[])(debit.Tenant.StoreCache = BuildPathArguments(debit.Tenant));
        var args = new RedisValue[HeaderLength + path.Length];
        args[0] = nowMicros;
        args[1] = debit.Cost;
        args[2] = lengthMs;
        args[3] = offsetMs;
        args[4] = previousStart;
        args[5] = start;
        args[6] = end;
        args[7] = nextEnd;
        path.CopyTo(args, HeaderLength);
        return (keys.PoolKeys(pool.Name), args);
    }

    public static QuotaDecision Read(RedisResult result, in QuotaDebit debit)
    {
        var reply = (long[])result!;
        return new QuotaDecision(
            Admitted: reply[0] == 1,
            LimitedBy: (QuotaLimitedBy)reply[1],
            LimitingNode: NodeAt(debit.Tenant, reply[2]),
            Used: reply[3],
            PoolUsed: reply[12],
            Limit: debit.Tenant.EffectiveLimit,
            Remaining: reply[4],
            Window: new WindowBounds(reply[5], reply[6]),
            NowMs: reply[7],
            OverageCredits: reply[8],
            SoftLimitNode: NodeAt(debit.Tenant, reply[9]),
            SoftLimitCrossed: reply[10] == 1,
            Shadow: reply[11] == 1,
            RetryAfterMicros: reply[13]);
    }

    private const int HeaderLength = 8;

    /// <summary>ARGV[9..]: the fields to read, the depth, then one record per node from the pool down (see debit.lua).</summary>
    private static RedisValue[] BuildPathArguments(QuotaNode tenant)
    {
        var path = new List<QuotaNode>();
        for (var node = tenant; node is not null; node = node.Parent)
        {
            path.Insert(0, node);
        }

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

        var records = new List<RedisValue>();
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

        // The nodes with a rate, pool first: index on the path, state field, interval, capacity, shadow.
        var rates = path.Where(n => n.Rate is not null).ToList();
        records.Add(rates.Count);
        foreach (var node in rates)
        {
            records.Add(node.Depth);
            records.Add(node.RateField);
            records.Add(node.Rate!.IntervalMicros);
            records.Add(node.Rate.CapacityMicros);
            records.Add(node.Mode == QuotaMode.Shadow ? 1 : 0);
        }

        return [fields.Count, .. fields.Select(f => (RedisValue)f), tenant.Depth, .. records];
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
