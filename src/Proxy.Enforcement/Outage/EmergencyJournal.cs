using System.Text.Json;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Outage;

/// <summary>
/// The outage policy <c>AllowBounded</c>: while the store is unreachable, this replica admits up to each
/// pool's <c>EmergencyAllowance</c> per window, and writes every such admission to a file (flushed to disk
/// before the request is forwarded) so that it is charged, with its usage event, once the store is back
/// (<see cref="JournalReplay"/>) — after a restart of the proxy too. The allowance already spent in a
/// window is counted from the file, so a restart does not hand it out twice.
/// </summary>
internal sealed class EmergencyJournal
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault };

    private readonly string _path;
    private readonly TimeProvider _timeProvider;
    private readonly QuotaMetrics _metrics;
    private readonly Lock _gate = new();
    private readonly Dictionary<(string Pool, long WindowStartMs), long> _spent = [];
    private readonly Dictionary<string, JournalRecord> _pending = new(StringComparer.Ordinal);

    public EmergencyJournal(string path, TimeProvider timeProvider, QuotaMetrics metrics, ILogger<EmergencyJournal> logger)
    {
        _path = Path.GetFullPath(path);
        _timeProvider = timeProvider;
        _metrics = metrics;
        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
        if (File.Exists(_path))
        {
            foreach (var line in File.ReadLines(_path).Where(line => line.Length > 0))
            {
                var record = JsonSerializer.Deserialize<JournalRecord>(line, Json)!;
                if (record.Done is { } done)
                {
                    _pending.Remove(done);
                    continue;
                }

                _pending[record.Id!] = record;
                foreach (var pool in record.Pools!)
                {
                    _spent[(pool.Pool, pool.WindowStartMs)] = _spent.GetValueOrDefault((pool.Pool, pool.WindowStartMs)) + record.Cost;
                }
            }
        }

        _metrics.EmergencyJournalPending(_pending.Count);
        QuotaLog.EmergencyJournalOpened(logger, _path, _pending.Count);
    }

    /// <summary>The admissions the store has not been charged with yet, oldest first.</summary>
    public IReadOnlyList<JournalRecord> Pending()
    {
        lock (_gate)
        {
            return [.. _pending.Values.OrderBy(record => record.AtMs)];
        }
    }

    /// <summary>Admits the request when every pool it draws on has emergency allowance left in its current window; journaled before it returns.</summary>
    /// <returns>The decision to act on, or null (the outage policy's 503).</returns>
    public RouteDecision? TryAdmit(IReadOnlyList<QuotaDebit> debits, UsageContext? usage)
    {
        var now = _timeProvider.GetUtcNow();
        var cost = debits[0].Cost;
        lock (_gate)
        {
            var windows = debits.Select(debit => debit.Pool.Locate(now)).ToList();
            for (var i = 0; i < debits.Count; i++)
            {
                if (_spent.GetValueOrDefault((debits[i].Pool.Name, windows[i].StartMs)) + cost > debits[i].Pool.EmergencyAllowance)
                {
                    return null;
                }
            }

            var record = new JournalRecord(
                Guid.NewGuid().ToString("N"),
                now.ToUnixTimeMilliseconds(),
                debits[0].Tenant.Path,
                cost,
                usage?.Route,
                usage?.RequestId,
                [.. debits.Select((debit, i) => new JournalPool(debit.Pool.Name, windows[i].StartMs))]);
            Append(record);
            _pending[record.Id!] = record;
            var decisions = new QuotaDecision[debits.Count];
            for (var i = 0; i < debits.Count; i++)
            {
                var key = (debits[i].Pool.Name, windows[i].StartMs);
                _spent[key] = _spent.GetValueOrDefault(key) + cost;
                _metrics.EmergencyAdmission(debits[i].Pool.Name, cost);
                decisions[i] = new QuotaDecision(
                    Admitted: true,
                    LimitedBy: QuotaLimitedBy.None,
                    LimitingNode: null,
                    Used: _spent[key],
                    PoolUsed: _spent[key],
                    Limit: debits[i].Tenant.EffectiveLimit,
                    Remaining: debits[i].Pool.EmergencyAllowance - _spent[key],
                    Window: windows[i],
                    NowMs: now.ToUnixTimeMilliseconds());
            }

            _metrics.EmergencyJournalPending(_pending.Count);
            return new RouteDecision(true, -1, decisions, Emergency: true);
        }
    }

    /// <summary>The store has been charged with <paramref name="record"/>: it leaves the journal.</summary>
    public void Done(JournalRecord record)
    {
        lock (_gate)
        {
            Append(new JournalRecord(Done: record.Id));
            _pending.Remove(record.Id!);
            _metrics.EmergencyJournalPending(_pending.Count);
            if (_pending.Count == 0)
            {
                // Nothing left to charge: the file starts again, keeping only what this window's allowance has spent.
                Compact();
            }
        }
    }

    private void Compact()
    {
        var now = _timeProvider.GetUtcNow().ToUnixTimeMilliseconds();
        var temporary = _path + ".tmp";
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            foreach (var ((pool, start), spent) in _spent)
            {
                // A done record per window still in its allowance's reach, so a restart counts what is spent.
                if (start > now - TimeSpan.FromDays(32).TotalMilliseconds)
                {
                    var id = Guid.NewGuid().ToString("N");
                    Write(stream, new JournalRecord(id, now, "", spent, null, null, [new JournalPool(pool, start)]));
                    Write(stream, new JournalRecord(Done: id));
                }
            }

            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, _path, overwrite: true);
    }

    private void Append(JournalRecord record)
    {
        using var stream = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read);
        Write(stream, record);
        // On disk before the request is forwarded: a crash after this loses nothing the vendor was called for.
        stream.Flush(flushToDisk: true);
    }

    private static void Write(FileStream stream, JournalRecord record)
    {
        stream.Write(JsonSerializer.SerializeToUtf8Bytes(record, Json));
        stream.WriteByte((byte)'\n');
    }
}
