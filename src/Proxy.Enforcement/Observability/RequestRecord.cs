namespace QuotaProxy.Enforcement.Observability;

/// <summary>
/// What one request through a proxied route came to, filled in as it goes (the quota step, the forwarder's
/// transforms) and read once its response has ended, for the duration metrics and the access log line. A
/// request feature: <c>HttpContext.Features.Get&lt;RequestRecord&gt;()</c>.
/// </summary>
internal sealed class RequestRecord(string routeId, long started)
{
    public string RouteId => routeId;

    /// <summary><see cref="System.Diagnostics.Stopwatch.GetTimestamp"/> as the request entered the route's pipeline.</summary>
    public long Started => started;

    /// <summary>The tenant the caller was identified as (metered routes).</summary>
    public string? Tenant { get; set; }

    /// <summary>What the quota step decided (metered routes).</summary>
    public RequestOutcome? Outcome { get; set; }

    /// <summary>Credits charged, refunds and settlements taken in (metered routes that reached the store).</summary>
    public long? Charged { get; set; }

    public double? DecisionSeconds { get; set; }

    /// <summary>Timestamp as the forwarder sent the request to the vendor; 0 if it never did.</summary>
    public long ForwardStarted { get; set; }

    /// <summary>Timestamp as the vendor's response headers arrived; 0 if none did.</summary>
    public long UpstreamAnswered { get; set; }

    public int UpstreamStatus { get; set; }

    public double? UpstreamSeconds => ForwardStarted == 0
        ? null
        : System.Diagnostics.Stopwatch.GetElapsedTime(ForwardStarted, UpstreamAnswered != 0 ? UpstreamAnswered : System.Diagnostics.Stopwatch.GetTimestamp()).TotalSeconds;
}
