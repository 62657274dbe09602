using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Identity;
using QuotaProxy.Enforcement.Ledger;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Admin;

/// <summary>
/// The admin API, on its own port (<c>Quota:Admin:Url</c>) behind an admin key: pool and tenant status,
/// runtime overrides of a tenant's Limit, Allocation and Guaranteed (every replica, kept in the store,
/// audited), resets of the current window, usage from the ledger, the audit trail, and its OpenAPI document.
/// </summary>
public static class AdminApi
{
    public const string Prefix = "/admin/v1";

    private const string ActorItem = "quotaproxy.admin.actor";

    public static WebApplication MapQuotaAdmin(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<LiveConfiguration>().Options.Admin;
        if (options.Url is null)
        {
            return app;
        }

        var adminUri = new Uri(options.Url);
        var port = adminUri.Port;
        if (adminUri.Host is "0.0.0.0" or "[::]" or "*" or "+")
        {
            QuotaLog.AdminListensOnEveryInterface(app.Services.GetRequiredService<ILogger<AdminAudit>>(), options.Url);
        }

        // The admin port serves the admin API and its dashboard, nothing else: not the proxy's routes, metrics or probes.
        app.Use((http, next) => http.Connection.LocalPort != port
            ? next(http)
            : AdminConsole.Serves(http.Request.Path) && HttpMethods.IsGet(http.Request.Method)
                ? AdminConsole.ServeAsync(http, http.RequestServices.GetRequiredService<LiveConfiguration>().Options.Admin.KeyHeader)
                : !http.Request.Path.StartsWithSegments(Prefix)
                    ? Problem(StatusCodes.Status404NotFound, "admin-not-found", "Not found", "The admin port serves only the admin API, under /admin/v1, and its dashboard, at /admin/.").ExecuteAsync(http)
                    : next(http));
        // Ahead of the endpoints, so that no body is read (or refused as 400/415) before the key is checked.
        app.Use((http, next) => http.Request.Path.StartsWithSegments(Prefix) && http.Connection.LocalPort == port ? AuthenticateAsync(http, next) : next(http));
        var group = app.MapGroup(Prefix)
            .RequireHost($"*:{port}")
            .AddEndpointFilter(async (context, next) =>
            {
                // The Host header is the caller's to write: only a connection to the admin port gets in.
                return context.HttpContext.Connection.LocalPort != port ? Results.NotFound() : await next(context);
            });

        group.MapGet("/status", StatusAsync);
        group.MapPut("/pools/{pool}/overrides/{**tenant}", OverrideAsync);
        group.MapDelete("/pools/{pool}/overrides/{**tenant}", RemoveOverrideAsync);
        group.MapPost("/pools/{pool}/reset", ResetAsync);
        group.MapPost("/pools/{pool}/reopen", ReopenAsync);
        group.MapGet("/usage", UsageAsync);
        group.MapGet("/usage/requests/{requestId}", RequestUsageAsync);
        group.MapGet("/pools/{pool}/timeline", TimelineAsync);
        group.MapGet("/audit", AuditAsync);
        group.MapPost("/keys", CreateKeyAsync);
        group.MapGet("/keys", ListKeysAsync);
        group.MapDelete("/keys/{id}", RevokeKeyAsync);
        group.MapGet("/openapi.json", () => Results.Text(OpenApiDocument.Value, "application/json"));
        return app;
    }

    /// <summary>
    /// The admin key, against the keys of the configuration in force now (a key removed from the file is
    /// refused within a second, without a restart). A failure is logged without the key and counted.
    /// </summary>
    private static async Task AuthenticateAsync(HttpContext http, RequestDelegate next)
    {
        var services = http.RequestServices;
        var admin = services.GetRequiredService<LiveConfiguration>().Options.Admin;
        var presented = http.Request.Headers[admin.KeyHeader].ToString();
        var actor = presented.Length == 0 ? null : AdminKeys.Of(admin).GetValueOrDefault(ApiKeyHash.Compute(presented));
        if (actor is null)
        {
            var reason = presented.Length == 0 ? "missing" : "unknown";
            QuotaLog.AdminAuthenticationFailed(services.GetRequiredService<ILogger<AdminAudit>>(), reason, http.Connection.RemoteIpAddress?.ToString() ?? "?", http.Request.Method, http.Request.Path.Value ?? "");
            services.GetRequiredService<QuotaMetrics>().AdminAuthenticationFailed(reason);
            await Problem(StatusCodes.Status401Unauthorized, "admin-unauthorized", "Admin key required", $"Send a valid admin key in {admin.KeyHeader}.").ExecuteAsync(http);
            return;
        }

        http.Items[ActorItem] = actor;
        await next(http);
    }

    private static readonly Lazy<string> OpenApiDocument = new(() =>
    {
        using var stream = typeof(AdminApi).Assembly.GetManifestResourceStream("QuotaProxy.Enforcement.Admin.openapi.json")!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    private static async Task<IResult> StatusAsync(string? pool, string? tenant, LiveConfiguration models, IQuotaStore store, UsageForecast forecast, CancellationToken cancellationToken)
    {
        var model = models.Model;
        if (pool is not null && !model.Pools.ContainsKey(pool))
        {
            return UnknownPool(pool);
        }

        var pools = model.Pools.Values
            .Where(p => (pool is null || p.Name == pool) && (tenant is null || p.Nodes.ContainsKey(tenant)))
            .OrderBy(p => p.Name, StringComparer.Ordinal)
            .ToList();
        if (tenant is not null && pools.Count == 0)
        {
            return UnknownTenant(pool ?? "any pool", tenant);
        }

        var statuses = new List<PoolStatus>();
        foreach (var definition in pools)
        {
            if (await ReadAsync(store, definition, cancellationToken) is not { } usage)
            {
                return StoreUnavailable();
            }

            statuses.Add(Status(definition, usage, models, tenant, forecast));
        }

        return Results.Ok(new { pools = statuses });
    }

    /// <param name="forecast">The burn-rate forecasts (the status endpoint's answer shows them; a change's answer, null, does not).</param>
    private static PoolStatus Status(PoolDefinition pool, PoolUsage usage, LiveConfiguration models, string? tenant, UsageForecast? forecast = null) => new(
        pool.Name,
        pool.Window.Text,
        usage.Window.Start,
        usage.Window.End,
        pool.Limit,
        usage.Used(pool.Root),
        usage.Available(pool.Root),
        usage.ClosedUntilMs > DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() ? DateTimeOffset.FromUnixTimeMilliseconds(usage.ClosedUntilMs) : null,
        [.. pool.Nodes.Values
            .Where(node => tenant is null || node.Path == tenant)
            .OrderBy(node => node.Path, StringComparer.Ordinal)
            .Select(node => new TenantStatus(
                node.Path,
                node.Limit,
                node.EffectiveLimit,
                node.Allocation,
                node.Guaranteed,
                node.Priority == QuotaNode.LowestPriority ? null : node.Priority,
                usage.Used(node),
                usage.Available(node),
                models.Overrides.GetValueOrDefault($"{pool.Name}/{node.Path}"),
                ForecastStatus.Of(forecast?.For(pool, node)),
                node.SoftLimit,
                node.Mode == QuotaMode.Shadow ? "shadow" : "enforce"))],
        ForecastStatus.Of(forecast?.For(pool, pool.Root)));

    private static async Task<IResult> OverrideAsync(
        string pool, string tenant, OverrideRequest change, HttpContext http, LiveConfiguration models, IQuotaStore store, AdminAudit audit, TimeProvider time, CancellationToken cancellationToken)
    {
        if (Find(models.Model, pool, tenant, out var definition, out var node) is { } notFound)
        {
            return notFound;
        }

        if (change.Limit is null && change.Allocation is null && change.Guaranteed is null)
        {
            return Problem(StatusCodes.Status400BadRequest, "admin-empty-override", "Nothing to change", "Send one or more of limit, allocation and guaranteed.");
        }

        if (change.ExpiresAt is { } expiresAt && expiresAt <= time.GetUtcNow())
        {
            return Problem(StatusCodes.Status400BadRequest, "admin-bad-expiry", "Expiry in the past", $"expiresAt {expiresAt:O} has passed: send a time to come, or none for an override that lasts until dropped.");
        }

        var key = $"{pool}/{tenant}";
        var existing = models.Overrides.GetValueOrDefault(key);
        var merged = new TenantOverride(
            pool,
            tenant,
            change.Limit ?? existing?.Limit,
            change.Allocation ?? existing?.Allocation,
            change.Guaranteed ?? existing?.Guaranteed,
            // Like the fields: kept when not sent (drop the override to make it last).
            change.ExpiresAt ?? existing?.ExpiresAt);
        return await ApplyAsync(http, models, store, audit, "override", definition!, node!, key, merged, cancellationToken);
    }

    private static async Task<IResult> RemoveOverrideAsync(
        string pool, string tenant, HttpContext http, LiveConfiguration models, IQuotaStore store, AdminAudit audit, CancellationToken cancellationToken)
    {
        if (Find(models.Model, pool, tenant, out var definition, out var node) is { } notFound)
        {
            return notFound;
        }

        return await ApplyAsync(http, models, store, audit, "override-removed", definition!, node!, $"{pool}/{tenant}", null, cancellationToken);
    }

    /// <summary>Validates the change, records it, then puts it in force in every replica: in that order, so the audit trail misses nothing.</summary>
    private static async Task<IResult> ApplyAsync(
        HttpContext http, LiveConfiguration models, IQuotaStore store, AdminAudit audit, string action, PoolDefinition pool, QuotaNode node, string key, TenantOverride? change, CancellationToken cancellationToken)
    {
        var errors = models.Validate(key, change, out var preview);
        if (errors.Count > 0)
        {
            return Problem(StatusCodes.Status400BadRequest, "admin-invalid-override", "The change breaks the quota rules", string.Join(" ", errors), errors);
        }

        var before = new { node.Limit, node.Allocation, node.Guaranteed };
        var updated = preview!.Pools[pool.Name].Nodes[node.Path];
        if (await RecordAsync(audit, http, action, pool.Name, node.Path, before, new { updated.Limit, updated.Allocation, updated.Guaranteed, change?.ExpiresAt }, cancellationToken) is { } unrecorded)
        {
            return unrecorded;
        }

        var applied = await models.ChangeAsync(key, change, cancellationToken);
        if (applied.Count > 0)
        {
            // Another admin's change landed in between and the two do not fit together.
            return Problem(StatusCodes.Status409Conflict, "admin-conflict", "The change no longer fits", string.Join(" ", applied), applied);
        }

        return await ReadAsync(store, pool, cancellationToken) is { } usage
            ? Results.Ok(Status(models.Model.Pools[pool.Name], usage, models, node.Path))
            : StoreUnavailable();
    }

    private static async Task<IResult> ResetAsync(
        string pool, ResetRequest? request, HttpContext http, LiveConfiguration models, IQuotaStore store, IOverrideStore overrides, AdminAudit audit, CancellationToken cancellationToken)
    {
        var model = models.Model;
        if (!model.Pools.TryGetValue(pool, out var definition))
        {
            return UnknownPool(pool);
        }

        var tenant = request?.Tenant;
        if (tenant is not null && !definition.Nodes.ContainsKey(tenant))
        {
            return UnknownTenant(pool, tenant);
        }

        // Every replica's credit leases of the pool were counted in what the reset gives back: none may be
        // spent on. Announced before (replicas stop spending them) and after (a block taken meanwhile is void too).
        if (!await AnnounceResetAsync(overrides, pool, cancellationToken) || await ReadAsync(store, definition, cancellationToken) is not { } usage)
        {
            return StoreUnavailable();
        }

        // A tenant gives back what it and every tenant below it used (its ancestors with it); a pool, all of
        // it. Each node gives back its own part, the deepest first, through the same adjustment as a refund, so
        // the aggregates move with the counters. With the ledger on, each part is a 'reset' event: billing
        // leaves it out (the vendor calls happened), and a window rebuilt from the ledger after Redis lost it
        // comes back as reset, not as it was before.
        var nodes = tenant is null ? definition.Root.Children : [definition.Nodes[tenant]];
        var before = new { used = tenant is null ? usage.Used(definition.Root) : usage.Used(definition.Nodes[tenant]) };
        if (await RecordAsync(audit, http, "reset", pool, tenant, before, new { used = 0 }, cancellationToken) is { } unrecorded)
        {
            return unrecorded;
        }

        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var context = new UsageContext(ResetRoute, http.TraceIdentifier);
        foreach (var node in nodes.SelectMany(DeepestFirst))
        {
            var own = usage.Used(node) - node.Children.Sum(usage.Used);
            if (own <= 0)
            {
                continue;
            }

            var decision = new RouteDecision(true, -1, [new QuotaDecision(true, QuotaLimitedBy.None, null, own, usage.Used(definition.Root), node.EffectiveLimit, 0, usage.Window, now)]);
            try
            {
                await store.AdjustAsync([new QuotaDebit(definition, node, own)], decision, -own, UsageKind.Reset, context, cancellationToken);
            }
            catch (QuotaStoreUnavailableException)
            {
                return StoreUnavailable();
            }
        }

        return await AnnounceResetAsync(overrides, pool, cancellationToken) && await ReadAsync(store, definition, cancellationToken) is { } after
            ? Results.Ok(Status(definition, after, models, tenant))
            : StoreUnavailable();
    }

    private static async Task<bool> AnnounceResetAsync(IOverrideStore overrides, string pool, CancellationToken cancellationToken)
    {
        try
        {
            await overrides.AnnounceResetAsync(pool, cancellationToken);
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The store's client failed (Redis away): the reset is refused as the store being unavailable.
            return false;
        }
    }

    /// <summary>The route a reset's ledger events name: a reset is no request.</summary>
    internal const string ResetRoute = "(reset)";

    private static IEnumerable<QuotaNode> DeepestFirst(QuotaNode node) => node.Children.SelectMany(DeepestFirst).Append(node);

    /// <summary>
    /// Issues an API key for a tenant: the key is in this answer only (the store keeps its digest), honoured by
    /// every replica within a second. The tenant must be a node of some pool. Audited.
    /// </summary>
    private static async Task<IResult> CreateKeyAsync(
        KeyRequest? request, HttpContext http, LiveConfiguration models, IApiKeyStore keys, RuntimeApiKeys runtime, AdminAudit audit, TimeProvider clock, CancellationToken cancellationToken)
    {
        var errors = new List<string>();
        var tenant = request?.Tenant;
        if (string.IsNullOrEmpty(tenant) || !models.Model.Pools.Values.Any(pool => pool.Nodes.ContainsKey(tenant)))
        {
            errors.Add(string.IsNullOrEmpty(tenant) ? "tenant is required." : $"tenant '{tenant}' is no tenant of any pool.");
        }

        if (request?.Name is { } name && (name.Length is 0 or > 64 || name.Any(c => c is < ' ' or > '~')))
        {
            errors.Add("name must be 1 to 64 printable ASCII characters.");
        }

        var now = clock.GetUtcNow();
        if (request?.ExpiresAt is { } expires && expires <= now)
        {
            errors.Add($"expiresAt must be in the future, got {expires:o}.");
        }

        if (errors.Count > 0)
        {
            return Problem(StatusCodes.Status400BadRequest, "invalid-key-request", "The key cannot be issued", string.Join(" ", errors), errors);
        }

        var key = RuntimeApiKeys.NewKey();
        var issued = new RuntimeApiKey(RuntimeApiKeys.NewId(), ApiKeyHash.Compute(key, models.Options.Identity.KeyPepper), tenant!, request!.Name, now, request.ExpiresAt);
        if (await RecordAsync(audit, http, "key-create", "", tenant, new { }, new { id = issued.Id, name = issued.Name, expiresAt = issued.ExpiresAt }, cancellationToken) is { } unrecorded)
        {
            return unrecorded;
        }

        await keys.AddAsync(issued, cancellationToken);
        await runtime.RefreshAsync(cancellationToken);
        return Results.Json(
            new { id = issued.Id, key, tenant = issued.Tenant, name = issued.Name, createdAt = issued.CreatedAt, expiresAt = issued.ExpiresAt },
            statusCode: StatusCodes.Status201Created);
    }

    /// <summary>The runtime API keys: id, tenant, name, when issued, when they expire and were last used; never a key or its digest.</summary>
    private static async Task<IResult> ListKeysAsync(IApiKeyStore keys, RuntimeApiKeys runtime, TimeProvider clock, CancellationToken cancellationToken)
    {
        var lastUsed = await runtime.LastUsedAsync(cancellationToken);
        var now = clock.GetUtcNow();
        var listed = (await keys.LoadAsync(cancellationToken))
            .OrderBy(key => key.CreatedAt)
            .Select(key => new
            {
                id = key.Id,
                tenant = key.Tenant,
                name = key.Name,
                createdAt = key.CreatedAt,
                expiresAt = key.ExpiresAt,
                expired = !key.IsLiveAt(now),
                lastUsedAt = lastUsed.TryGetValue(key.Id, out var at) ? DateTimeOffset.FromUnixTimeMilliseconds(at) : (DateTimeOffset?)null,
            });
        return Results.Ok(new { keys = listed });
    }

    /// <summary>Revokes a runtime API key: refused by every replica within a second. Audited.</summary>
    private static async Task<IResult> RevokeKeyAsync(string id, HttpContext http, IApiKeyStore keys, RuntimeApiKeys runtime, AdminAudit audit, CancellationToken cancellationToken)
    {
        if ((await keys.LoadAsync(cancellationToken)).FirstOrDefault(key => key.Id == id) is not { } known)
        {
            return Problem(StatusCodes.Status404NotFound, "unknown-key", "Unknown key", $"No runtime API key has the id '{id}'.");
        }

        if (await RecordAsync(audit, http, "key-revoke", "", known.Tenant, new { id, name = known.Name }, new { }, cancellationToken) is { } unrecorded)
        {
            return unrecorded;
        }

        await keys.RevokeAsync(id, cancellationToken);
        await runtime.RefreshAsync(cancellationToken);
        return Results.NoContent();
    }

    /// <summary>Ends the pool's vendor closure now: the operator knows the vendor is back before its Retry-After says so. Audited.</summary>
    private static async Task<IResult> ReopenAsync(
        string pool, HttpContext http, LiveConfiguration models, IQuotaStore store, AdminAudit audit, ILogger<AdminAudit> logger, CancellationToken cancellationToken)
    {
        if (!models.Model.Pools.TryGetValue(pool, out var definition))
        {
            return UnknownPool(pool);
        }

        if (await ReadAsync(store, definition, cancellationToken) is not { } usage)
        {
            return StoreUnavailable();
        }

        var closedUntil = usage.ClosedUntilMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(usage.ClosedUntilMs) : (DateTimeOffset?)null;
        if (await RecordAsync(audit, http, "reopen", pool, null, new { closedUntil }, new { closedUntil = (DateTimeOffset?)null }, cancellationToken) is { } unrecorded)
        {
            return unrecorded;
        }

        try
        {
            QuotaLog.PoolReopened(logger, pool, Actor(http), await store.ReopenAsync(definition, cancellationToken));
        }
        catch (QuotaStoreUnavailableException)
        {
            return StoreUnavailable();
        }

        return await ReadAsync(store, definition, cancellationToken) is { } after
            ? Results.Ok(Status(definition, after, models, tenant: null))
            : StoreUnavailable();
    }

    private static async Task<IResult> UsageAsync(string? from, string? to, string? tenant, string? route, string? format, IServiceProvider services, CancellationToken cancellationToken)
    {
        if (services.GetService<LedgerQueries>() is not { } queries)
        {
            return Problem(StatusCodes.Status404NotFound, "admin-no-ledger", "No ledger", "Usage comes from the PostgreSQL ledger; set Quota:Ledger:ConnectionString.");
        }

        if (!TryDay(from, out var fromDay) || !TryDay(to, out var toDay) || toDay < fromDay)
        {
            return Problem(StatusCodes.Status400BadRequest, "admin-bad-range", "Bad date range", "Send from and to as UTC days (yyyy-MM-dd), from not after to.");
        }

        IReadOnlyList<DailyUsage> rows;
        try
        {
            rows = await queries.UsageAsync(fromDay, toDay, tenant, route, cancellationToken);
        }
        catch (Npgsql.NpgsqlException ex)
        {
            // PostgreSQL away, or (for a moment at start) its schema not yet migrated.
            return Problem(StatusCodes.Status503ServiceUnavailable, "ledger-unavailable", "Ledger unavailable", $"The ledger's PostgreSQL did not answer: {ex.Message}");
        }

        if (string.Equals(format, "csv", StringComparison.OrdinalIgnoreCase))
        {
            var csv = new StringBuilder("day,pool,tenant,route,debited,overage,refunded,adjusted,net,events\n");
            foreach (var r in rows)
            {
                csv.Append(CultureInfo.InvariantCulture, $"{r.Day:yyyy-MM-dd},{Csv(r.Pool)},{Csv(r.Tenant)},{Csv(r.Route)},{r.Debited},{r.Overage},{r.Refunded},{r.Adjusted},{r.Net},{r.Events}\n");
            }

            return Results.Text(csv.ToString(), "text/csv");
        }

        return Results.Ok(new { from = fromDay, to = toDay, usage = rows });
    }

    /// <summary>
    /// The pool's current window from the ledger: each tenant's credits, cumulative, per bucket (about 200 buckets
    /// a window, a minute at least). The dashboard's chart.
    /// </summary>
    private static async Task<IResult> TimelineAsync(string pool, LiveConfiguration models, TimeProvider time, IServiceProvider services, CancellationToken cancellationToken)
    {
        if (!models.Model.Pools.TryGetValue(pool, out var definition))
        {
            return UnknownPool(pool);
        }

        if (services.GetService<LedgerQueries>() is not { } queries)
        {
            return Problem(StatusCodes.Status404NotFound, "admin-no-ledger", "No ledger", "The timeline comes from the PostgreSQL ledger; set Quota:Ledger:ConnectionString.");
        }

        var window = definition.Locate(time.GetUtcNow());
        var bucket = TimeSpan.FromMinutes(Math.Max(1, Math.Ceiling((window.End - window.Start).TotalMinutes / 200)));
        IReadOnlyList<(DateTimeOffset At, string Tenant, long Credits)> rows;
        try
        {
            rows = await queries.TimelineAsync(pool, window.Start, window.End, bucket, cancellationToken);
        }
        catch (Npgsql.NpgsqlException ex)
        {
            return Problem(StatusCodes.Status503ServiceUnavailable, "ledger-unavailable", "Ledger unavailable", $"The ledger's PostgreSQL did not answer: {ex.Message}");
        }

        var tenants = rows.GroupBy(r => r.Tenant).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g =>
        {
            long total = 0;
            return new { tenant = g.Key, points = g.Select(r => new { at = r.At + bucket, used = total += r.Credits }).ToList() };
        });
        return Results.Ok(new { pool, windowStart = window.Start, windowEnd = window.End, bucketSeconds = (long)bucket.TotalSeconds, tenants });
    }

    /// <summary>
    /// What one request cost in the end: its events in the ledger (the charge, then any refund or settlement)
    /// and their net per pool. A request id the caller reused covers every request that sent it.
    /// </summary>
    private static async Task<IResult> RequestUsageAsync(string requestId, IServiceProvider services, CancellationToken cancellationToken)
    {
        if (services.GetService<LedgerQueries>() is not { } queries)
        {
            return Problem(StatusCodes.Status404NotFound, "admin-no-ledger", "No ledger", "Usage comes from the PostgreSQL ledger; set Quota:Ledger:ConnectionString.");
        }

        IReadOnlyList<RequestUsage> events;
        try
        {
            events = await queries.RequestAsync(requestId, cancellationToken);
        }
        catch (Npgsql.NpgsqlException ex)
        {
            return Problem(StatusCodes.Status503ServiceUnavailable, "ledger-unavailable", "Ledger unavailable", $"The ledger's PostgreSQL did not answer: {ex.Message}");
        }

        if (events.Count == 0)
        {
            return Problem(
                StatusCodes.Status404NotFound,
                "usage-request-unknown",
                "No usage for this request",
                $"The ledger holds no usage event for request id '{requestId}': not a metered request that reached the store, or not in the ledger yet (events reach it within about a second; longer while PostgreSQL is away).");
        }

        var pools = events.GroupBy(e => e.Pool).Select(g => new { pool = g.Key, charged = g.Sum(e => e.Credits) }).ToList();
        return Results.Ok(new
        {
            requestId,
            // The route's charge: the same in each of its pools, but for a replay some pool took for free.
            charged = pools.Max(p => p.charged),
            pools,
            events = events.Select(e => new { occurredAt = e.OccurredAt, e.Pool, e.Tenant, e.Route, e.Kind, e.Credits }),
        });
    }

    private static async Task<IResult> AuditAsync(int? limit, AdminAudit audit, CancellationToken cancellationToken) =>
        audit.Durable
            ? Results.Ok(new { entries = await audit.RecentAsync(Math.Clamp(limit ?? 100, 1, 1000), cancellationToken) })
            : Problem(StatusCodes.Status404NotFound, "admin-no-ledger", "No audit table", "The audit trail is kept in the ledger's PostgreSQL (and always in the log); set Quota:Ledger:ConnectionString.");

    /// <returns>Null when recorded; else the 503 that refuses the change.</returns>
    private static async Task<IResult?> RecordAsync(AdminAudit audit, HttpContext http, string action, string pool, string? tenant, object before, object after, CancellationToken cancellationToken)
    {
        try
        {
            await audit.RecordAsync(Actor(http), action, pool, tenant, before, after, cancellationToken);
            return null;
        }
        catch (Npgsql.NpgsqlException ex)
        {
            return Problem(StatusCodes.Status503ServiceUnavailable, "audit-unavailable", "Audit trail unavailable", $"The change was not made: it could not be recorded ({ex.Message}).");
        }
    }

    private static IResult? Find(QuotaModel model, string pool, string tenant, out PoolDefinition? definition, out QuotaNode? node)
    {
        node = null;
        if (!model.Pools.TryGetValue(pool, out definition))
        {
            return UnknownPool(pool);
        }

        return definition.Nodes.TryGetValue(tenant, out node) ? null : UnknownTenant(pool, tenant);
    }

    private static async Task<PoolUsage?> ReadAsync(IQuotaStore store, PoolDefinition pool, CancellationToken cancellationToken)
    {
        try
        {
            return await store.ReadUsageAsync(pool, cancellationToken);
        }
        catch (QuotaStoreUnavailableException)
        {
            return null;
        }
    }

    private static string Actor(HttpContext http) => (string)http.Items[ActorItem]!;

    private static bool TryDay(string? text, out DateOnly day) =>
        DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out day);

    /// <summary>
    /// A CSV cell: quoted when it must be, and a value that a spreadsheet would run as a formula (starting with
    /// <c>=</c>, <c>+</c>, <c>-</c>, <c>@</c>, a tab or a carriage return) is prefixed with <c>'</c> (OWASP's
    /// advice on CSV injection): a route or tenant name never executes in the operator's spreadsheet.
    /// </summary>
    internal static string Csv(string value)
    {
        if (value.Length > 0 && value[0] is '=' or '+' or '-' or '@' or '\t' or '\r')
        {
            value = "'" + value;
        }

        return value.IndexOfAny([',', '"', '\n', '\r']) < 0 ? value : $"\"{value.Replace("\"", "\"\"", StringComparison.Ordinal)}\"";
    }

    private static IResult UnknownPool(string pool) =>
        Problem(StatusCodes.Status404NotFound, "admin-unknown-pool", "Unknown pool", $"No pool named '{pool}' is configured.");

    private static IResult UnknownTenant(string pool, string tenant) =>
        Problem(StatusCodes.Status404NotFound, "admin-unknown-tenant", "Unknown tenant", $"No tenant '{tenant}' in {pool}.");

    private static IResult StoreUnavailable() =>
        Problem(StatusCodes.Status503ServiceUnavailable, "store-unavailable", "Quota store unavailable", "The quota store did not answer in time; try again.");

    private static IResult Problem(int status, string type, string title, string detail, IReadOnlyList<string>? errors = null) =>
        Results.Problem(
            detail: detail,
            statusCode: status,
            title: title,
            type: $"urn:quotaproxy:problem:{type}",
            extensions: errors is null ? null : new Dictionary<string, object?> { ["errors"] = errors });
}
