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

        // Upstreams are read at start (a restart changes them), so the credential is fixed per route build.
        var clusterId = context.Route.ClusterId;
        if (clusterId is not null
            && live.Options.Upstreams.TryGetValue(clusterId, out var upstream)
            && upstream.Credential is { } credential)
        {
            var secret = credential.Value ?? environment(credential.EnvironmentVariable!);
            context.AddRequestHeader(credential.Header, secret!, append: false);
        }
    }
}
