using QuotaProxy.Enforcement.Configuration;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace QuotaProxy.Enforcement.Forwarding;

/// <summary>
/// What the vendor receives: never the caller's identity headers (by the names in force for this request,
/// so a reload that renames them still strips them), always the vendor credential of the route's cluster,
/// added by the proxy so that callers never hold the vendor secret.
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
