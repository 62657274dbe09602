using QuotaProxy.Enforcement.Configuration;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace QuotaProxy.Enforcement.Forwarding;

/// <summary>
/// What the vendor receives: never the caller's identity headers, always the vendor credential of the
/// route's cluster, added by the proxy so that callers never hold the vendor secret.
/// </summary>
internal static class UpstreamRequestTransforms
{
    public static void Apply(TransformBuilderContext context, QuotaOptions options, Func<string, string?> environment)
    {
        context.AddRequestHeaderRemove(options.Identity.ApiKeyHeader);
        context.AddRequestHeaderRemove(options.Identity.TenantHeader);

        var clusterId = context.Route.ClusterId;
        if (clusterId is not null
            && options.Upstreams.TryGetValue(clusterId, out var upstream)
            && upstream.Credential is { } credential)
        {
            var secret = credential.Value ?? environment(credential.EnvironmentVariable!);
            context.AddRequestHeader(credential.Header, secret!, append: false);
        }
    }
}
