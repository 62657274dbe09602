using System.Diagnostics;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Enforcement.Observability;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace QuotaProxy.Enforcement.Forwarding;

/// <summary>
/// What the vendor receives: never the caller's identity headers (by the names in force for this request,
/// so a reload that renames them still strips them), always the vendor credential of the route's cluster,
/// added by the proxy so that callers never hold the vendor secret. The request's record learns when the
/// request left and when the vendor answered, with what status.
/// </summary>
internal static class UpstreamRequestTransforms
{
    public static void Apply(TransformBuilderContext context, LiveConfiguration live, Func<string, string?> environment)
    {
        context.AddRequestTransform(transform =>
        {
            var identifier = live.Current.Identifier;
            // YARP may copy headers lazily: its own helper removes a header whether or not that has happened.
            RequestTransform.RemoveHeader(transform, identifier.ApiKeyHeader);
            RequestTransform.RemoveHeader(transform, identifier.TenantHeader);
            // The last step before the request leaves for the vendor: the upstream time starts here.
            if (transform.HttpContext.Features.Get<RequestRecord>() is { } record)
            {
                record.ForwardStarted = Stopwatch.GetTimestamp();
            }

            return ValueTask.CompletedTask;
        });
        context.AddResponseTransform(transform =>
        {
            // The vendor's response headers are in (no response: the forwarder failed, and the record says so).
            if (transform.ProxyResponse is { } response && transform.HttpContext.Features.Get<RequestRecord>() is { } record)
            {
                record.UpstreamAnswered = Stopwatch.GetTimestamp();
                record.UpstreamStatus = (int)response.StatusCode;
            }

            return ValueTask.CompletedTask;
        });

        // Upstreams are read at start (a restart changes them), so the credential is fixed per route build. An
        // unmetered route gets it only when it says so: else the vendor's secret would pay for calls no quota counts.
        var clusterId = context.Route.ClusterId;
        var metadata = context.Route.Metadata;
        var metered = metadata?.ContainsKey(Pricing.RouteQuota.PoolKey) == true;
        var optedIn = metadata?.GetValueOrDefault(Pricing.RouteQuota.ForwardCredentialKey) is { } forward && bool.TryParse(forward, out var yes) && yes;
        if (clusterId is not null
            && (metered || optedIn)
            && live.Options.Upstreams.TryGetValue(clusterId, out var upstream)
            && upstream.Credential is { } credential)
        {
            var secret = credential.Value ?? environment(credential.EnvironmentVariable!);
            context.AddRequestHeader(credential.Header, secret!, append: false);
        }
    }
}
