namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// <c>Quota:AccessLog</c>: one JSON line per request through the proxy's routes (route, tenant, status, credits
/// charged, decision and upstream time), never with a key, a header or a query string. Read at start.
/// </summary>
public sealed record AccessLogOptions
{
    public bool Enabled { get; init; }

    /// <summary>The file the lines are appended to; unset, standard output (where a container's log collector reads).</summary>
    public string? Path { get; init; }
}
