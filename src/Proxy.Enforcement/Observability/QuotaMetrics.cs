using System.Diagnostics.Metrics;

namespace QuotaProxy.Enforcement.Observability;

/// <summary>
/// The enforcement library's instruments, on the <c>QuotaProxy</c> <see cref="Meter"/>: anything that
/// listens to .NET meters (prometheus-net's meter adapter, OpenTelemetry, <c>dotnet-counters</c>) counts
/// them. Tags are configured names only (pool, node path), so their number is bounded by the config.
/// </summary>
public static class QuotaMetrics
{
    public const string MeterName = "QuotaProxy";

    private static readonly Meter Meter = new(MeterName);

    /// <summary><c>quotaproxy.soft_limit.crossings</c>: a node went above its SoftLimit (once per node per window).</summary>
    public static readonly Counter<long> SoftLimitCrossings = Meter.CreateCounter<long>(
        "quotaproxy.soft_limit.crossings", unit: "{crossing}", description: "Nodes that went above their SoftLimit, once per node per window.");

    /// <summary><c>quotaproxy.vendor.closures</c>: the vendor answered 429 and the pool was closed.</summary>
    public static readonly Counter<long> VendorClosures = Meter.CreateCounter<long>(
        "quotaproxy.vendor.closures", unit: "{closure}", description: "Vendor 429 answers that closed a pool.");

    /// <summary><c>quotaproxy.ledger.events_written</c>: usage events this process wrote to PostgreSQL.</summary>
    public static readonly Counter<long> LedgerEventsWritten = Meter.CreateCounter<long>(
        "quotaproxy.ledger.events_written", unit: "{event}", description: "Usage events written to the PostgreSQL ledger.");

    /// <summary><c>quotaproxy.ledger.flush_errors</c>: flush passes that failed (PostgreSQL or Redis away).</summary>
    public static readonly Counter<long> LedgerFlushErrors = Meter.CreateCounter<long>(
        "quotaproxy.ledger.flush_errors", unit: "{error}", description: "Ledger flush passes that failed; the events wait in Redis.");

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> Backlog = new(StringComparer.Ordinal);

    /// <summary><c>quotaproxy.ledger.backlog</c>: events waiting in each pool's stream, as the last flush pass saw them.</summary>
    public static readonly ObservableGauge<long> LedgerBacklog = Meter.CreateObservableGauge(
        "quotaproxy.ledger.backlog",
        () => Backlog.Select(pair => new Measurement<long>(pair.Value, new KeyValuePair<string, object?>("pool", pair.Key))),
        unit: "{event}",
        description: "Usage events waiting in Redis for the ledger, per pool.");

    internal static void SetLedgerBacklog(string pool, long events) => Backlog[pool] = events;

    internal static void SoftLimitCrossed(string pool, string node) =>
        SoftLimitCrossings.Add(1, new KeyValuePair<string, object?>("pool", pool), new KeyValuePair<string, object?>("node", node));

    internal static void VendorClosed(string pool) =>
        VendorClosures.Add(1, new KeyValuePair<string, object?>("pool", pool));
}
