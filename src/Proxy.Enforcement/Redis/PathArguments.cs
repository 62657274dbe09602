using System.Buffers.Binary;
using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// What a script call on one tenant node sends about its path (debit.lua and adjust.lua take it alike): the
/// path's numbers packed as little-endian doubles (<see cref="DebitLayout"/>) with the <c>struct.unpack</c>
/// format that reads them all, the hash fields the script reads and writes, and the node's lease sets.
/// Built once per node and kept on the node itself.
/// </summary>
internal sealed record PathArguments(RedisKeys Owner, RedisValue Format, RedisValue Records, RedisValue[] Fields, RedisKey[] LeaseKeys)
{
    /// <summary>The pool's window as last packed for this node (debit.lua); replaced, never changed, when the window moves on.</summary>
    public volatile PackedWindow? Window;

    /// <summary>The last shared ARGV of debit.lua's commonest call; replaced, never changed.</summary>
    public volatile SharedDebitArguments? Shared;

    /// <summary>
    /// The node's arguments, built on first use and kept on the node (a side table keyed by node costs every
    /// GC a scan of one handle per tenant). Two threads may build them at once; both build the same thing.
    /// The lease keys carry the store's key prefix, so a node used by another store (tests) is built again.
    /// </summary>
    public static PathArguments For(RedisKeys keys, QuotaDebit debit)
    {
        if (debit.Tenant.StoreCache is PathArguments cached && cached.Owner == keys)
        {
            return cached;
        }

        var (numbers, fields) = Build(debit.Tenant);
        var built = new PathArguments(
            keys,
            "<" + new string('d', numbers.Count),
            Pack(numbers),
            fields,
            [.. debit.Tenant.PathFromRoot().Where(n => n.MaxInFlight is not null).Select(n => keys.LeaseKey(debit.Pool, n))]);
        debit.Tenant.StoreCache = built;
        return built;
    }

    /// <summary>
    /// Numbers for a script as little-endian doubles, which it reads with one <c>struct.unpack</c> rather than
    /// a <c>tonumber</c> each. Lua numbers are doubles either way: Unix µs and ms, and credits up to 2^53,
    /// arrive exact.
    /// </summary>
    public static byte[] Pack(IReadOnlyList<long> numbers)
    {
        var packed = new byte[numbers.Count * sizeof(double)];
        for (var i = 0; i < numbers.Count; i++)
        {
            BinaryPrimitives.WriteDoubleLittleEndian(packed.AsSpan(i * sizeof(double)), numbers[i]);
        }

        return packed;
    }

    /// <summary>One path's records (<see cref="DebitLayout"/>: the head, a record per node from the pool down, the rates, the leases) and its fields.</summary>
    private static (List<long> Numbers, RedisValue[] Fields) Build(QuotaNode tenant)
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
            var record = new long[node.IsRoot ? DebitLayout.PoolRecordLength : DebitLayout.TenantRecordLength];
            record[DebitLayout.NodeUsedField] = Read(node.UsageField);
            record[DebitLayout.NodeLimit] = node.Limit;
            record[DebitLayout.NodeOverage] = node.Overage;
            record[DebitLayout.NodeSoftLimit] = node.SoftLimit ?? -1;
            record[DebitLayout.NodeShadow] = node.Mode == QuotaMode.Shadow ? 1 : 0;
            if (node.IsRoot)
            {
                records.AddRange(record);
                continue;
            }

            var parent = node.Parent!;
            var levels = node.HigherLevels.Where(l => l.AllocationAboveGuaranteed > 0).ToList();
            record[DebitLayout.TenantGuaranteed] = node.Guaranteed;
            record[DebitLayout.TenantAllocation] = node.Allocation;
            // Aggregates that are always zero are neither read nor written.
            record[DebitLayout.TenantGuaranteeField] = Read(parent.ChildGuaranteedSum > 0 ? parent.GuaranteeAggregateField : null);
            record[DebitLayout.TenantLevelField] = Read(node.Allocation > node.Guaranteed ? node.LevelField : null);
            record[DebitLayout.TenantSiblingGuarantees] = parent.ChildGuaranteedSum;
            record[DebitLayout.TenantLevelCount] = levels.Count;
            records.AddRange(record);
            foreach (var level in levels)
            {
                var pair = new long[DebitLayout.LevelLength];
                pair[DebitLayout.LevelField] = Read(level.Field);
                pair[DebitLayout.LevelAllocationAboveGuaranteed] = level.AllocationAboveGuaranteed;
                records.AddRange(pair);
            }
        }

        // The nodes with a rate, pool first; their state fields follow the usage fields in ARGV.
        var rates = path.Where(n => n.Rate is not null).ToList();
        records.Add(rates.Count);
        foreach (var node in rates)
        {
            var record = new long[DebitLayout.RateRecordLength];
            record[DebitLayout.RateNode] = node.Depth;
            record[DebitLayout.RateInterval] = node.Rate!.IntervalMicros;
            record[DebitLayout.RateCapacity] = node.Rate.CapacityMicros;
            record[DebitLayout.RateShadow] = node.Mode == QuotaMode.Shadow ? 1 : 0;
            records.AddRange(record);
        }

        // The nodes with a MaxInFlight, pool first; the j-th's lease set is this path's j-th in KEYS.
        var leased = path.Where(n => n.MaxInFlight is not null).ToList();
        records.Add(leased.Count);
        for (var j = 0; j < leased.Count; j++)
        {
            var record = new long[DebitLayout.LeaseRecordLength];
            record[DebitLayout.LeaseNode] = leased[j].Depth;
            record[DebitLayout.LeaseSet] = j + 1;
            record[DebitLayout.LeaseMax] = leased[j].MaxInFlight!.Value;
            record[DebitLayout.LeaseShadow] = leased[j].Mode == QuotaMode.Shadow ? 1 : 0;
            records.AddRange(record);
        }

        var head = new long[DebitLayout.PathHeadLength];
        head[DebitLayout.PathFieldCount] = fields.Count;
        head[DebitLayout.PathDepth] = tenant.Depth;
        return ([.. head, .. records], [.. fields.Select(f => (RedisValue)f), .. rates.Select(n => (RedisValue)n.RateField)]);
    }
}
