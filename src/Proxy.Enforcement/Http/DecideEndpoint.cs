using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.AspNetCore.Routing.Template;
using Microsoft.Extensions.DependencyInjection;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Pricing;
using QuotaProxy.Enforcement.Quotas;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Configuration;

namespace QuotaProxy.Enforcement.Http;

/// <summary>
/// <c>POST /quota/v1/decide</c> on the proxy's port: "would this request be admitted now?", asked as the
/// caller (its API key or trusted header) about <c>{ "method", "path", "cost"? }</c>. Answered by the store's
/// read-only decision (<see cref="IQuotaStore.PeekAsync"/>, the same code a debit runs), so a question and a
/// request at the same instant cannot disagree; nothing is debited, held or recorded, and the vendor is not
/// called. With <c>Quota:Decide:Pool</c>, each question costs 1 credit there.
/// </summary>
internal static class DecideEndpoint
{
    public const string Path = "/quota/v1/decide";

    /// <summary>The highest cost a question may name.</summary>
    internal const long MaxCost = 1_000_000;

    private static readonly ConditionalWeakTable<RouteConfig, Matcher> Matchers = [];

    /// <summary>A route's path template, matcher and inbound precedence (lower: more specific), made once per route.</summary>
    private sealed class Matcher(RouteTemplate template)
    {
        public TemplateMatcher Template { get; } = new(template, []);

        public decimal Precedence { get; } = RoutePrecedence.ComputeInbound(template);
    }

    public static async Task HandleAsync(HttpContext context)
    {
        var services = context.RequestServices;
        var config = services.GetRequiredService<LiveConfiguration>().Current;
        var options = config.Options;
        if (!options.Decide.Enabled)
        {
            await QuotaProblems.NoRouteAsync(context, context.Request.Method, Path);
            return;
        }

        var (question, errors) = await ReadAsync(context);
        if (question is null)
        {
            await QuotaProblems.BadQuestionAsync(context, errors);
            return;
        }

        var runtimeKeys = services.GetRequiredService<RuntimeApiKeys>();
        if (config.Identifier.Identify(context, runtimeKeys.TenantOf) is not { } tenant)
        {
            await QuotaProblems.UnidentifiedAsync(context, config.Identifier.ApiKeyHeader);
            return;
        }

        if (Route(services.GetRequiredService<IProxyStateLookup>(), question.Method, question.Path.Split('?')[0]) is not { } route)
        {
            await QuotaProblems.NoRouteAsync(context, question.Method, question.Path);
            return;
        }

        var store = services.GetRequiredService<IQuotaStore>();
        if (options.Decide.Pool is { } askingPool && await ChargeQuestionAsync(context, store, config, askingPool, tenant) is false)
        {
            return;
        }

        if (services.GetRequiredService<RouteQuotaCatalog>().For(route) is not { } quota)
        {
            await context.Response.WriteAsJsonAsync(new { metered = false, admitted = true, status = StatusCodes.Status200OK, route = route.RouteId, tenant, cost = 0 });
            return;
        }

        var cost = question.Cost ?? quota.Cost;
        if (RoutePrice.Debits(quota.Pools, cost, config.Model, tenant, out var missingPool, out var notInPool) is not { } debits)
        {
            if (missingPool is not null)
            {
                await QuotaProblems.StoreUnavailableAsync(context, options.Store.RetryAfterWhenUnavailable);
                return;
            }

            await context.Response.WriteAsJsonAsync(new
            {
                metered = true, admitted = false, status = StatusCodes.Status403Forbidden, route = route.RouteId, tenant, cost,
                limitedBy = "forbidden", limitingPool = notInPool, limitingNode = (string?)null, retryAfterSeconds = (long?)null, pools = Array.Empty<object>(),
            });
            return;
        }

        RouteDecision decision;
        IReadOnlyList<PoolUsage> usage;
        try
        {
            decision = await store.PeekAsync(debits, context.RequestAborted);
            // Each node's headroom, read just after: under traffic it may differ from the decision's by what was spent in between.
            usage = await Task.WhenAll(debits.Select(d => store.ReadUsageAsync(d.Pool, context.RequestAborted).AsTask()));
        }
        catch (QuotaStoreUnavailableException)
        {
            await QuotaProblems.StoreUnavailableAsync(context, options.Store.RetryAfterWhenUnavailable);
            return;
        }

        var limiting = decision.Pools[decision.Admitted ? 0 : decision.LimitingIndex];
        var rejected = !decision.Admitted;
        await context.Response.WriteAsJsonAsync(new
        {
            metered = true,
            admitted = decision.Admitted,
            status = rejected ? Status(limiting.LimitedBy) : StatusCodes.Status200OK,
            route = route.RouteId,
            tenant,
            cost,
            limitedBy = rejected ? QuotaProblems.LimitedByName(limiting.LimitedBy) : null,
            limitingPool = rejected ? debits[decision.LimitingIndex].Pool.Name : null,
            // Named as the 429's problem body names it: a tenant's path, or the pool's own name.
            limitingNode = rejected && limiting.LimitingNode is { } node ? (node.IsRoot ? debits[decision.LimitingIndex].Pool.Name : node.Path) : null,
            retryAfterSeconds = rejected ? limiting.SecondsToRetry : (long?)null,
            pools = debits.Select((debit, i) => new
            {
                pool = debit.Pool.Name,
                admitted = decision.Pools[i].Admitted,
                limitedBy = decision.Pools[i].Admitted ? null : QuotaProblems.LimitedByName(decision.Pools[i].LimitedBy),
                // What the caller could spend now, before this request (the decision's figure is after it).
                remaining = decision.Pools[i].Remaining + (decision.Admitted && !decision.Pools[i].Replayed ? cost : 0),
                windowEnd = decision.Pools[i].Window.End,
                nodes = debit.Tenant.PathFromRoot().Select(n => new
                {
                    node = n.IsRoot ? debit.Pool.Name : n.Path,
                    used = usage[i].Used(n),
                    limit = n.IsRoot ? debit.Pool.Limit : n.Limit,
                    remaining = usage[i].Available(n),
                }),
            }),
        });
    }

    private static int Status(QuotaLimitedBy limitedBy) => limitedBy switch
    {
        QuotaLimitedBy.LedgerBacklog or QuotaLimitedBy.Expired => StatusCodes.Status503ServiceUnavailable,
        _ => StatusCodes.Status429TooManyRequests,
    };

    /// <summary>The question's own price, 1 credit in <paramref name="pool"/>: false when it was answered (refused) here.</summary>
    private static async Task<bool> ChargeQuestionAsync(HttpContext context, IQuotaStore store, ConfigurationSnapshot config, string pool, string tenant)
    {
        if (RoutePrice.Debits([pool], 1, config.Model, tenant, out _, out var notInPool) is not { } debits)
        {
            await QuotaProblems.ForbiddenAsync(context, tenant, notInPool ?? pool);
            return false;
        }

        try
        {
            var decision = await store.DebitAsync(debits, usage: null, context.RequestAborted);
            if (decision.Admitted)
            {
                return true;
            }

            RateLimitHeaders.Write(context.Response.Headers, debits, decision, config.Options.Headers.Legacy);
            await QuotaProblems.QuotaExceededAsync(context, pool, tenant, 1, decision.Pools[decision.LimitingIndex]);
        }
        catch (QuotaStoreUnavailableException)
        {
            await QuotaProblems.StoreUnavailableAsync(context, config.Options.Store.RetryAfterWhenUnavailable);
        }

        return false;
    }

    /// <summary>
    /// The route the proxy would take for <paramref name="method"/> <paramref name="path"/>, as ASP.NET Core's
    /// routing picks it: among the routes whose <c>Match.Path</c> and <c>Match.Methods</c> take it, the lowest
    /// <c>Order</c>, then the most specific template (literal segments before parameters before catch-alls).
    /// Hosts, headers and query matches are not weighed.
    /// </summary>
    internal static RouteConfig? Route(IProxyStateLookup proxy, string method, string path)
    {
        (RouteConfig Route, int Order, decimal Precedence)? best = null;
        foreach (var route in proxy.GetRoutes().Select(r => r.Config))
        {
            if (route.Match.Path is null || (route.Match.Methods is { Count: > 0 } methods && !methods.Contains(method, StringComparer.OrdinalIgnoreCase)))
            {
                continue;
            }

            var matcher = Matchers.GetValue(route, static r => new Matcher(TemplateParser.Parse(r.Match.Path!)));
            if (!matcher.Template.TryMatch(path, []))
            {
                continue;
            }

            var candidate = (route, route.Order ?? 0, matcher.Precedence);
            if (best is not { } current || candidate.Item2 < current.Order || (candidate.Item2 == current.Order && candidate.Precedence < current.Precedence))
            {
                best = candidate;
            }
        }

        return best?.Route;
    }

    private static async Task<(Question? Question, List<string> Errors)> ReadAsync(HttpContext context)
    {
        var errors = new List<string>();
        JsonElement body;
        try
        {
            body = await JsonSerializer.DeserializeAsync<JsonElement>(context.Request.Body, cancellationToken: context.RequestAborted);
        }
        catch (JsonException)
        {
            return (null, ["The body must be JSON: { \"method\": \"GET\", \"path\": \"/v1/quotes/AAPL\", \"cost\": 3 } (cost optional)."]);
        }

        if (body.ValueKind != JsonValueKind.Object)
        {
            return (null, ["The body must be a JSON object: { \"method\": \"GET\", \"path\": \"/v1/quotes/AAPL\" }."]);
        }

        var method = body.TryGetProperty("method", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : null;
        if (method is null || method.Length is 0 or > 16 || !method.All(char.IsAsciiLetterUpper))
        {
            errors.Add("method must be an HTTP method in capitals, such as GET or POST.");
        }

        var path = body.TryGetProperty("path", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString()! : null;
        if (path is null || !path.StartsWith('/') || path.Length > 2048)
        {
            errors.Add("path must be the request's path, starting with / (at most 2,048 characters).");
        }

        long? cost = null;
        if (body.TryGetProperty("cost", out var c) && c.ValueKind != JsonValueKind.Null)
        {
            if (c.ValueKind == JsonValueKind.Number && c.TryGetInt64(out var credits) && credits is > 0 and <= MaxCost)
            {
                cost = credits;
            }
            else
            {
                errors.Add($"cost, when sent, must be a whole number of credits from 1 to {MaxCost:N0}.");
            }
        }

        return errors.Count > 0 ? (null, errors) : (new Question(method!, path!, cost), errors);
    }

    private sealed record Question(string Method, string Path, long? Cost);
}
