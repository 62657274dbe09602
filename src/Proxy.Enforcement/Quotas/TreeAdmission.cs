namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// The admission rule (docs/quota-model.md) over one window's counters, written once in C# (this class, used by
/// <see cref="InProcessQuotaStore"/>) and once in Lua (<c>debit.lua</c>); the differential tests hold the
/// two to identical decisions and identical counters.
/// <para>
/// A cost c from tenant x is admitted iff for every node n from x up to the pool, with parent P and
/// R = Limit(P) − u(P): u(n) + c ≤ Limit(n) + Overage(n), and c ≤ max(Guaranteed(n) − u(n), R − Σ claim(s))
/// over the siblings s of n, where claim(s) is s's unused Allocation when s has a higher priority than n,
/// else its unused Guaranteed. The pool itself: u + c ≤ Limit.
/// </para>
/// <para>
/// The sums come from running aggregates per parent instead of a scan of the siblings:
/// <c>g:P</c> = Σ min(u(s), Guaranteed(s)) and, per priority level q, <c>d:P:q</c> =
/// Σ (min(u(s), Allocation(s)) − min(u(s), Guaranteed(s))). With the configuration sums on
/// <see cref="QuotaNode"/>, Σ claim(s) over the siblings of n is
/// (ΣG(P) − g:P) − unusedG(n) + Σ over levels q above n of (Σ(A−G)(P,q) − d:P:q):
/// O(depth × priority levels) per decision, whatever the number of siblings. <c>d:P:q</c> is kept only where
/// a sibling of lower priority than q reads it, and an aggregate is written only when it changes.
/// </para>
/// <para>
/// After an admission every term of every path node's room falls by exactly c (its parent's R, its own
/// Guaranteed − u, and its Limit room; its siblings' claims do not move, since the change in g:P is its own
/// change in used guarantee), so the remaining after is the remaining before minus c. The Lua script uses
/// this to compute the path once.
/// </para>
/// </summary>
internal static class TreeAdmission
{
    /// <summary>Window field: the pool is closed until then (Unix ms) after a vendor 429.</summary>
    public const string ClosedField = "closed";

    /// <summary>
    /// Decides, without writing anything, whether this pool admits <paramref name="cost"/> from
    /// <paramref name="tenant"/>, against <paramref name="counters"/> (the window's fields, field → value,
    /// absent = 0) and the GCRA arrival times in <paramref name="state"/> (fields that outlive windows).
    /// Checks in order: the pool's closure, every node's credits from the pool down, every node's rate from
    /// the pool down, every node's requests in flight; the first failure on an enforcing node rejects. The
    /// store then calls <see cref="Apply"/> when every pool of the route admits.
    /// <para>
    /// With an idempotency claim (<paramref name="idempotencyField"/>, see <see cref="IdempotencyClaim"/>): a key
    /// first used for another request is refused (<see cref="QuotaLimitedBy.IdempotencyConflict"/>); a retry of
    /// the same request while replays are left is a replay, checked like any request except for credits,
    /// and charged none; past its replays it is charged like any request.
    /// </para>
    /// </summary>
    public static TreeOutcome Evaluate(
        QuotaNode tenant, long cost, Dictionary<string, long> counters, Dictionary<string, long> state, Leases leases, long nowMicros, string? idempotencyField = null, IdempotencyClaim? claim = null)
    {
        var path = PathFromRoot(tenant);
        var smallestRoom = SmallestRoom(path, counters);
        var replay = false;
        if (idempotencyField is not null && counters.TryGetValue(idempotencyField, out var seen))
        {
            if (seen / IdempotencyClaim.ReplayCountRange != claim!.Fingerprint)
            {
                return new TreeOutcome(false, QuotaLimitedBy.IdempotencyConflict, null, smallestRoom, 0, null, false, false, 0);
            }

            replay = seen % IdempotencyClaim.ReplayCountRange < claim.MaxReplays;
        }

        var (limitedBy, limiting, shadowLimitedBy, shadowLimiting, wait) = Check(path, cost, counters, state, leases, nowMicros, credits: !replay);
        if (limitedBy != QuotaLimitedBy.None)
        {
            return new TreeOutcome(false, limitedBy, limiting, smallestRoom, 0, null, false, false, wait);
        }

        if (replay)
        {
            // A retry of a request already charged in this window, which the vendor does not do twice: for nothing.
            return new TreeOutcome(true, shadowLimitedBy, shadowLimiting, smallestRoom, 0, null, false, shadowLimitedBy != QuotaLimitedBy.None, 0, Replayed: true);
        }

        long overage = 0;
        QuotaNode? softNode = null;
        var softCrossed = false;
        foreach (var node in path)
        {
            var before = Get(counters, node.UsageField);
            var after = before + cost;
            if (!node.IsRoot)
            {
                overage = Math.Max(overage, Math.Clamp(after - node.Limit, 0, cost));
            }

            if (softNode is null && node.SoftLimit is { } soft && after > soft)
            {
                softNode = node;
                softCrossed = before <= soft;
            }
        }

        var shadow = shadowLimitedBy != QuotaLimitedBy.None;
        return new TreeOutcome(true, shadowLimitedBy, shadowLimiting, smallestRoom, overage, softNode, softCrossed, shadow, 0);
    }

    /// <summary>
    /// Debits every node on the path (a replay: none), the aggregates that change, and the path's rates, and
    /// gives <paramref name="leaseId"/> a slot in every MaxInFlight on the path. A replay counts one more
    /// against its key; a first request binds the key to its fingerprint.
    /// </summary>
    public static void Apply(
        QuotaNode tenant, long cost, Dictionary<string, long> counters, Dictionary<string, long> state, Leases leases, long nowMicros, string? leaseId, long leaseMs,
        string? idempotencyField = null, IdempotencyClaim? claim = null, bool replayed = false)
    {
        if (idempotencyField is not null)
        {
            counters[idempotencyField] = counters.TryGetValue(idempotencyField, out var seen)
                ? seen + (replayed ? 1 : 0)
                : claim!.Fingerprint * IdempotencyClaim.ReplayCountRange;
        }

        foreach (var node in PathFromRoot(tenant))
        {
            if (!replayed)
            {
                var before = Get(counters, node.UsageField);
                MoveUsage(node, before, before + cost, counters);
            }

            if (node.Rate is { } rate)
            {
                state[node.RateField] = ArrivalAfter(node, rate, cost, state, nowMicros);
            }

            if (node.MaxInFlight is not null)
            {
                leases.Of(node)[leaseId!] = (nowMicros / 1000) + leaseMs;
            }
        }
    }

    /// <summary>Moves every node on the path, and the aggregates that change, by <paramref name="delta"/> (a refund or a settlement).</summary>
    public static void Adjust(QuotaNode tenant, long delta, Dictionary<string, long> counters)
    {
        foreach (var node in PathFromRoot(tenant))
        {
            var before = Get(counters, node.UsageField);
            MoveUsage(node, before, Math.Max(0, before + delta), counters);
        }
    }

    /// <summary>Sets a node's usage and moves its parent's aggregates by what that changes (written only when they change).</summary>
    private static void MoveUsage(QuotaNode node, long before, long after, Dictionary<string, long> counters)
    {
        if (!node.IsRoot)
        {
            Add(counters, node.Parent!.GuaranteeAggregateField, Math.Min(after, node.Guaranteed) - Math.Min(before, node.Guaranteed));
            if (node.LevelField is { } levelField)
            {
                Add(counters, levelField, AboveGuarantee(node, after) - AboveGuarantee(node, before));
            }
        }

        counters[node.UsageField] = after;
    }

    /// <summary>The largest cost <paramref name="tenant"/> could be admitted for now, without debiting.</summary>
    public static long Remaining(QuotaNode tenant, Dictionary<string, long> counters) => Math.Max(0, SmallestRoom(PathFromRoot(tenant), counters));

    /// <summary>
    /// The first failing check, split by mode: an enforcing node's failure rejects; a failure on a node in
    /// shadow mode is only reported. With the µs a retry has to wait when a rate or a closure rejects.
    /// </summary>
    /// <param name="credits">False for a replay: it takes no credits, so they are not checked.</param>
    private static (QuotaLimitedBy, QuotaNode?, QuotaLimitedBy, QuotaNode?, long) Check(
        QuotaNode[] path, long cost, Dictionary<string, long> counters, Dictionary<string, long> state, Leases leases, long nowMicros, bool credits = true)
    {
        QuotaLimitedBy shadowLimitedBy = QuotaLimitedBy.None;
        QuotaNode? shadowLimiting = null;

        bool Rejects(QuotaNode node, QuotaLimitedBy failure)
        {
            if (node.Mode == QuotaMode.Enforce)
            {
                return true;
            }

            if (shadowLimitedBy == QuotaLimitedBy.None)
            {
                (shadowLimitedBy, shadowLimiting) = (failure, node);
            }

            return false;
        }

        var root = path[0];
        var closedUntilMs = Get(counters, ClosedField);
        if (closedUntilMs > nowMicros / 1000 && Rejects(root, QuotaLimitedBy.Vendor))
        {
            return (QuotaLimitedBy.Vendor, root, QuotaLimitedBy.None, null, (closedUntilMs * 1000) - nowMicros);
        }

        foreach (var node in credits ? path : [])
        {
            var failure = Failure(node, cost, counters);
            if (failure != QuotaLimitedBy.None && Rejects(node, failure))
            {
                return (failure, node, QuotaLimitedBy.None, null, 0);
            }
        }

        foreach (var node in path)
        {
            if (node.Rate is not { } rate)
            {
                continue;
            }

            var arrival = ArrivalAfter(node, rate, cost, state, nowMicros);
            if (arrival - nowMicros > rate.CapacityMicros && Rejects(node, QuotaLimitedBy.Rate))
            {
                return (QuotaLimitedBy.Rate, node, QuotaLimitedBy.None, null, arrival - rate.CapacityMicros - nowMicros);
            }
        }

        foreach (var node in path)
        {
            if (node.MaxInFlight is { } max && leases.Live(node, nowMicros / 1000) + 1 > max && Rejects(node, QuotaLimitedBy.Concurrency))
            {
                return (QuotaLimitedBy.Concurrency, node, QuotaLimitedBy.None, null, 0);
            }
        }

        return (QuotaLimitedBy.None, null, shadowLimitedBy, shadowLimiting, 0);
    }

    /// <summary>GCRA: the node's theoretical arrival time once <paramref name="cost"/> more credits pass.</summary>
    private static long ArrivalAfter(QuotaNode node, QuotaRate rate, long cost, Dictionary<string, long> state, long nowMicros) =>
        Math.Max(Get(state, node.RateField), nowMicros) + (cost * rate.IntervalMicros);

    private static QuotaLimitedBy Failure(QuotaNode node, long cost, Dictionary<string, long> counters)
    {
        var used = Get(counters, node.UsageField);
        if (used + cost > node.Limit + node.Overage)
        {
            return node.IsRoot ? QuotaLimitedBy.Pool : QuotaLimitedBy.Tenant;
        }

        return !node.IsRoot && cost > ShareRoom(node, used, counters) ? QuotaLimitedBy.Reserved : QuotaLimitedBy.None;
    }

    /// <summary>max(Guaranteed(n) − u(n), R − Σ claims of the siblings).</summary>
    private static long ShareRoom(QuotaNode node, long used, Dictionary<string, long> counters)
    {
        var parent = node.Parent!;
        var left = parent.Limit - Get(counters, parent.UsageField);
        var unusedGuarantee = node.Guaranteed - Math.Min(used, node.Guaranteed);
        var claims = parent.ChildGuaranteedSum - Get(counters, parent.GuaranteeAggregateField) - unusedGuarantee;
        foreach (var level in node.HigherLevels)
        {
            claims += level.AllocationAboveGuaranteed - Get(counters, level.Field);
        }

        return Math.Max(node.Guaranteed - used, left - claims);
    }

    /// <summary>The smallest room on the path (may be negative: above a limit in shadow mode).</summary>
    private static long SmallestRoom(QuotaNode[] path, Dictionary<string, long> counters)
    {
        var remaining = long.MaxValue;
        foreach (var node in path)
        {
            var used = Get(counters, node.UsageField);
            var room = node.Limit + node.Overage - used;
            if (!node.IsRoot)
            {
                room = Math.Min(room, ShareRoom(node, used, counters));
            }

            remaining = Math.Min(remaining, room);
        }

        return remaining;
    }

    private static long AboveGuarantee(QuotaNode node, long used) => Math.Min(used, node.Allocation) - Math.Min(used, node.Guaranteed);

    private static QuotaNode[] PathFromRoot(QuotaNode tenant) => tenant.PathFromRoot();

    private static long Get(Dictionary<string, long> counters, string field) => counters.GetValueOrDefault(field);

    /// <summary>Aggregates are written only when they change, as the Lua script does.</summary>
    private static void Add(Dictionary<string, long> counters, string field, long delta)
    {
        if (delta != 0)
        {
            counters[field] = Get(counters, field) + delta;
        }
    }
}
