using System.Diagnostics;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Leasing;

/// <summary>
/// One replica's credit lease for one tenant of one pool (of one configuration: a new model makes new
/// slots): the block it holds, what it has spent from it since its last record, and what the store last
/// said of the tenant's headroom, from which the next block is sized. Every field is guarded by the slot's
/// lock; the store calls happen outside it.
/// </summary>
internal sealed class LeaseSlot(QuotaDebit debit, LeaseSettings settings, bool eligible, string replica)
{
    /// <summary>A block is at most this share of the headroom the store last reported: near a limit it shrinks to one request's cost.</summary>
    internal const int HeadroomShare = 4;

    private readonly Lock _gate = new();
    private readonly List<LeasedSpend> _spends = [];
    private readonly List<LeaseRecord> _outbox = [];
    private long _sequence;

    /// <summary>Lease ids are unique in the process: the replica's id and this count.</summary>
    private static long s_leases;

    public PoolDefinition Pool { get; } = debit.Pool;

    public QuotaNode Tenant { get; } = debit.Tenant;

    public LeaseSettings Settings { get; } = settings;

    /// <summary>
    /// Whether requests of this tenant may be admitted from a lease: not when a node on its path has a Rate or
    /// a MaxInFlight (decided per request, in the store), an Overage, or shadow mode.
    /// </summary>
    public bool Eligible { get; } = eligible;

    /// <summary>One block taken at a time: requests that find the block spent wait for the next one (at most the store timeout).</summary>
    public SemaphoreSlim Taking { get; } = new(1, 1);

    // The lease in force (Id null: none).
    private string? _id;
    private long _balance;
    private long _expiresTicks;
    private long _expiresAtMs;
    private long _grantTicks;
    private RouteDecision? _grant;

    /// <summary>The tenant's largest admissible cost after the last store decision; -1 before the first.</summary>
    private long _headroom = -1;

    private bool _dirty;
    private long _spentSinceReport;

    /// <summary>Credits this replica holds unspent.</summary>
    public long Balance
    {
        get
        {
            lock (_gate)
            {
                return _id is null ? 0 : _balance;
            }
        }
    }

    /// <summary>No lease in force and nothing left to record.</summary>
    public bool Idle
    {
        get
        {
            lock (_gate)
            {
                return _id is null && _outbox.Count == 0 && _spends.Count == 0 && _returns.Count == 0 && !_dirty;
            }
        }
    }

    /// <summary>The size of the next block for a request of <paramref name="cost"/>: its cost alone (exact mode) until the store has said how much room there is, and near any limit.</summary>
    public long NextSize(long cost)
    {
        lock (_gate)
        {
            if (_headroom < 0 || Settings.MaxCredits <= cost)
            {
                return cost;
            }

            return Math.Max(cost, Math.Min(Settings.MaxCredits, _headroom / HeadroomShare));
        }
    }

    /// <summary>What a store decision said of the tenant's headroom (its largest admissible cost now).</summary>
    public void Learn(RouteDecision decision)
    {
        lock (_gate)
        {
            _headroom = decision.Pools[0].Remaining;
        }
    }

    /// <summary>Spends <paramref name="cost"/> from the lease in force, if it is alive and holds enough.</summary>
    /// <returns>The request's decision, with the figures of the lease's grant as if only what was spent had been debited; null when the lease cannot pay.</returns>
    public RouteDecision? TrySpend(long cost, UsageContext? usage)
    {
        var now = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            if (_id is null || now >= _expiresTicks || _balance < cost)
            {
                return null;
            }

            _balance -= cost;
            return Spent(cost, usage, now);
        }
    }

    /// <summary>What <see cref="TrySpend"/> would answer now, with nothing spent; null when the lease cannot pay.</summary>
    public RouteDecision? TryPeek(long cost)
    {
        var now = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            return _id is null || now >= _expiresTicks || _balance < cost ? null : Figures(_balance - cost, now);
        }
    }

    /// <summary>
    /// A block of <paramref name="size"/> was debited by <paramref name="grant"/>; the request that took it
    /// spends <paramref name="cost"/> of it at once. A lease still in force (holding less than a request
    /// needs) ends: its remainder is returned.
    /// </summary>
    /// <returns>The request's decision.</returns>
    public RouteDecision Install(RouteDecision grant, long size, long cost, UsageContext? usage)
    {
        var now = Stopwatch.GetTimestamp();
        var figures = grant.Pools[0];
        var lifetime = TimeSpan.FromMilliseconds(Math.Max(0, Math.Min(Settings.Ttl.TotalMilliseconds, figures.Window.EndMs - figures.NowMs)));
        lock (_gate)
        {
            EndLocked(forfeit: false);
            _id = NewId();
            _balance = size - cost;
            _grant = grant;
            _grantTicks = now;
            _expiresTicks = now + (long)(lifetime.TotalSeconds * Stopwatch.Frequency);
            _expiresAtMs = figures.NowMs + (long)lifetime.TotalMilliseconds;
            _headroom = figures.Remaining;
            _dirty = true;
            return Spent(cost, usage, now);
        }
    }

    /// <summary>
    /// An admitted request gives back or is charged <paramref name="delta"/> credits: into the lease it was
    /// spent from while that lease is in force (recorded with its spends); false when that lease has ended.
    /// </summary>
    public bool TryAdjust(RouteDecision decision, long delta, UsageKind kind, UsageContext? usage)
    {
        lock (_gate)
        {
            if (_id is null || decision.CreditLease != _id || _balance - delta < 0)
            {
                return false;
            }

            _balance -= delta;
            _spends.Add(new LeasedSpend(usage?.Route ?? "", usage?.RequestId, delta, kind, NowMsLocked(Stopwatch.GetTimestamp())));
            _spentSinceReport += delta;
            _dirty = true;
            return true;
        }
    }

    /// <summary>
    /// Ends the lease in force when it has expired, or now when <paramref name="force"/>: its unspent credits
    /// are to be returned, or, <paramref name="forfeit"/>, left counted as used (a reset or a failover voided
    /// them). Leases ended meanwhile by a newer one's grant are returned too.
    /// </summary>
    /// <returns>The returns to send to the store.</returns>
    public List<PendingReturn> EndIfDue(bool force, bool forfeit)
    {
        var now = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            if (_id is not null && (force || now >= _expiresTicks))
            {
                EndLocked(forfeit);
            }

            if (_returns.Count == 0)
            {
                return [];
            }

            var returns = new List<PendingReturn>(_returns);
            _returns.Clear();
            return returns;
        }
    }

    /// <summary>How long a return whose reply did not come is sent again (each applies once, by its operation id).</summary>
    internal static readonly TimeSpan ReturnFor = TimeSpan.FromMinutes(1);

    private readonly List<PendingReturn> _returns = [];

    /// <summary>A return the store did not acknowledge: sent again at the next pass.</summary>
    public void Retry(PendingReturn pending)
    {
        lock (_gate)
        {
            _returns.Add(pending);
        }
    }

    /// <summary>Forfeited credits since the last call (a reset or failover voided them), for the metric.</summary>
    public long TakeForfeited()
    {
        lock (_gate)
        {
            var forfeited = _forfeited;
            _forfeited = 0;
            return forfeited;
        }
    }

    private long _forfeited;

    /// <summary>The records to send now: those waiting, and one for the lease in force when it has spent or is new since the last.</summary>
    /// <returns>The records in order, and the credits spent since the last call (for the metric).</returns>
    public (LeaseRecord[] Records, long Spent) TakeRecords()
    {
        lock (_gate)
        {
            if (_dirty && _id is not null)
            {
                _outbox.Add(Record(closed: false));
            }
            else if (_spends.Count > 0)
            {
                // Events of a lease already closed (a return that failed): a record of their own, closed at once.
                _outbox.Add(new LeaseRecord(NewId(), ++_sequence, Tenant, _expiresAtMs, -1, true, [.. _spends]));
                _spends.Clear();
            }

            _dirty = false;
            var spent = _spentSinceReport;
            _spentSinceReport = 0;
            if (_outbox.Count == 0)
            {
                return ([], spent);
            }

            LeaseRecord[] records = [.. _outbox];
            _outbox.Clear();
            return (records, spent);
        }
    }

    /// <summary>Records the store did not take, to send again before any newer one (each applies once, by its sequence).</summary>
    public void Requeue(IEnumerable<LeaseRecord> records)
    {
        lock (_gate)
        {
            _outbox.InsertRange(0, records);
        }
    }

    /// <summary>
    /// A return that failed (it may or may not have landed): the credits are taken as still counted, and the
    /// ledger records them as a lease event, so its net is never below the counters.
    /// </summary>
    public void ReturnFailed(long unspent)
    {
        lock (_gate)
        {
            _spends.Add(new LeasedSpend(LeaseRecord.Route, null, unspent, UsageKind.Lease, NowMsLocked(Stopwatch.GetTimestamp())));
        }
    }

    private string NewId() => $"{replica}-{Interlocked.Increment(ref s_leases)}";

    private RouteDecision Spent(long cost, UsageContext? usage, long now)
    {
        if (usage is not null)
        {
            _spends.Add(new LeasedSpend(usage.Route, usage.RequestId, cost, UsageKind.Debit, NowMsLocked(now)));
        }

        _spentSinceReport += cost;
        _dirty = true;
        return Figures(_balance, now);
    }

    /// <summary>The grant's figures as if only what was spent had been debited, <paramref name="balance"/> being what the block still holds.</summary>
    private RouteDecision Figures(long balance, long now)
    {
        var figures = _grant!.Pools[0];
        return new RouteDecision(
            true,
            -1,
            [figures with
            {
                Used = figures.Used - balance,
                PoolUsed = figures.PoolUsed - balance,
                Remaining = figures.Remaining + balance,
                NowMs = NowMsLocked(now),
                SoftLimitCrossed = false,
            }])
        { CreditLease = _id };
    }

    /// <summary>The store's clock now, from the grant's instant and the time since (the replica's clock never decides a window).</summary>
    private long NowMsLocked(long now) => _grant is null ? 0 : _grant.Pools[0].NowMs + (long)Stopwatch.GetElapsedTime(_grantTicks, now).TotalMilliseconds;

    private void EndLocked(bool forfeit)
    {
        if (_id is null)
        {
            return;
        }

        var unspent = _balance;
        if (forfeit)
        {
            // Counted as used, never billed: the ledger says so, so its net stays equal to the counters.
            _forfeited += unspent;
            if (unspent > 0)
            {
                _spends.Add(new LeasedSpend(LeaseRecord.Route, null, unspent, UsageKind.Lease, NowMsLocked(Stopwatch.GetTimestamp())));
            }
        }

        _outbox.Add(Record(closed: true));
        if (!forfeit && unspent > 0)
        {
            _returns.Add(new PendingReturn(unspent, _grant!, _id + "-return", Stopwatch.GetTimestamp() + (long)(ReturnFor.TotalSeconds * Stopwatch.Frequency)));
        }

        _id = null;
        _balance = 0;
        _dirty = false;
    }

    private LeaseRecord Record(bool closed)
    {
        var record = new LeaseRecord(_id!, ++_sequence, Tenant, _expiresAtMs, closed ? -1 : _balance, closed, [.. _spends]);
        _spends.Clear();
        return record;
    }
}
