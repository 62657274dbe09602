using System.Runtime.CompilerServices;
using Yarp.ReverseProxy.Configuration;

namespace QuotaProxy.Enforcement.Pricing;

/// <summary>Parses each route's metering once per <see cref="RouteConfig"/> object (YARP builds new ones on reload).</summary>
internal sealed class RouteQuotaCatalog
{
    private readonly ConditionalWeakTable<RouteConfig, RouteQuota?> _parsed = [];

    public RouteQuota? For(RouteConfig route) => _parsed.GetValue(route, RouteQuota.Parse);
}
