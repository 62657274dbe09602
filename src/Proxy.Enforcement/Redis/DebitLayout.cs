namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// The records C# and the Lua scripts exchange, named once. Every offset is 0-based from the start of its
/// record; the Lua files declare the same names as locals (<c>NodeLimit</c> is <c>NODE_LIMIT</c>) and add
/// them to a 1-based position. <c>DebitLayoutTests</c> fails when a Lua file and this class disagree.
/// </summary>
internal static class DebitLayout
{
    // debit.lua's ARGV: the request's header, then one block per pool.

    /// <summary>
    /// ARGV's header: the packed numbers (now, cost, pools, lease ms, max backlog), the lease id, the route,
    /// tenant and request id of the ledger's events (empty: no events), the idempotency field.
    /// </summary>
    public const int ArgvNumbers = 0;
    public const int ArgvLeaseId = 1;
    public const int ArgvRoute = 2;
    public const int ArgvTenant = 3;
    public const int ArgvRequestId = 4;
    public const int ArgvIdempotency = 5;
    public const int ArgvHeaderLength = 6;

    /// <summary>A pool's block: its packed window, the records' unpack format, the packed records; its fields follow.</summary>
    public const int BlockWindow = 0;
    public const int BlockFormat = 1;
    public const int BlockRecords = 2;
    public const int BlockHeaderLength = 3;

    // adjust.lua's ARGV: its header (delta, pools, route, tenant, request id, kind, operation id, the
    // debit's event id), then per pool the start of the window the debit was made in and the path exactly
    // as debit.lua takes it.

    /// <summary>An idempotency field's value: fingerprint × this + replays so far (<see cref="Quotas.IdempotencyClaim"/>).</summary>
    public const long ReplayCountRange = Quotas.IdempotencyClaim.ReplayCountRange;

    public const int AdjustOperation = 6;
    public const int AdjustDebitEvent = 7;
    public const int AdjustHeaderLength = 8;

    /// <summary>How long adjust.lua remembers an operation id, so that a retried compensation applies once.</summary>
    public const long OperationTtlMs = 3_600_000;
    public const int BlockWindowStart = 0;
    public const int AdjustBlockHeaderLength = 3;

    // The packed records of one path: a head, one record per node from the pool down, then the rates and leases.

    /// <summary>The head: how many usage hash fields the decision reads, and the path's depth (tenant nodes, the pool not counted).</summary>
    public const int PathFieldCount = 0;
    public const int PathDepth = 1;
    public const int PathHeadLength = 2;

    /// <summary>Every node's record, the pool's included: its usage field (a 1-based field index), Limit, Overage, SoftLimit (-1: none), shadow (1|0).</summary>
    public const int NodeUsedField = 0;
    public const int NodeLimit = 1;
    public const int NodeOverage = 2;
    public const int NodeSoftLimit = 3;
    public const int NodeShadow = 4;
    public const int PoolRecordLength = 5;

    /// <summary>
    /// A tenant's record goes on: Guaranteed, Allocation, the field of its parent's guarantee aggregate and of
    /// its own level aggregate (0: none), Σ Guaranteed of its parent's children, and the count of higher
    /// sibling levels that follow as (field, Σ (Allocation − Guaranteed)) pairs.
    /// </summary>
    public const int TenantGuaranteed = 5;
    public const int TenantAllocation = 6;
    public const int TenantGuaranteeField = 7;
    public const int TenantLevelField = 8;
    public const int TenantSiblingGuarantees = 9;
    public const int TenantLevelCount = 10;
    public const int TenantRecordLength = 11;
    public const int LevelField = 0;
    public const int LevelAllocationAboveGuaranteed = 1;
    public const int LevelLength = 2;

    /// <summary>After the nodes, a count and one record per node with a Rate: its index on the path, emission interval (µs), capacity (µs), shadow.</summary>
    public const int RateNode = 0;
    public const int RateInterval = 1;
    public const int RateCapacity = 2;
    public const int RateShadow = 3;
    public const int RateRecordLength = 4;

    /// <summary>Then a count and one record per node with a MaxInFlight: its index on the path, its lease set (j-th of the path's), MaxInFlight, shadow.</summary>
    public const int LeaseNode = 0;
    public const int LeaseSet = 1;
    public const int LeaseMax = 2;
    public const int LeaseShadow = 3;
    public const int LeaseRecordLength = 4;

    // debit.lua's reply: the route's verdict, then one record per pool.

    /// <summary>The reply's head: admitted (1|0), the first pool that rejected (0-based, -1 none).</summary>
    public const int ReplyAdmitted = 0;
    public const int ReplyLimitingPool = 1;
    public const int ReplyHeadLength = 2;

    /// <summary>Each pool's reply (see <see cref="Quotas.QuotaDecision"/> for what each value means).</summary>
    public const int ReplyPoolAdmitted = 0;
    public const int ReplyLimitedBy = 1;
    public const int ReplyLimitingNode = 2;
    public const int ReplyUsed = 3;
    public const int ReplyRemaining = 4;
    public const int ReplyWindowStart = 5;
    public const int ReplyWindowEnd = 6;
    public const int ReplyNow = 7;
    public const int ReplyOverage = 8;
    public const int ReplySoftLimitNode = 9;
    public const int ReplySoftLimitCrossed = 10;
    public const int ReplyShadow = 11;
    public const int ReplyPoolUsed = 12;
    public const int ReplyRetryAfterMicros = 13;
    public const int ReplyReplayed = 14;
    public const int PoolReplyLength = 15;

    /// <summary>How long a pool's usage hash (and a lease set) is kept past its window's end or last lease: memory cleanup only.</summary>
    public const long KeepAfterWindowMs = 60_000;
}
