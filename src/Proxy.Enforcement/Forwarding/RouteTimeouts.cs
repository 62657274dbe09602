using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Timeouts;

namespace QuotaProxy.Enforcement.Forwarding;

/// <summary>
/// A route's <c>Timeout</c> (YARP's route setting, enforced by ASP.NET Core's request timeouts) ends the
/// vendor call by cancelling the request, which the forwarder reports as the caller's cancellation (400).
/// This step, just inside the quota step, says what happened instead: 504, so that the quota step sees a
/// gateway timeout (a route's <c>Quota.RefundOn</c> of <c>5xx</c> or <c>504</c> gives the credits back).
/// </summary>
internal static class RouteTimeouts
{
    public static async Task AnswerGatewayTimeoutAsync(HttpContext context, Func<Task> next)
    {
        await next();
        if (context.Features.Get<IHttpRequestTimeoutFeature>() is { RequestTimeoutToken.IsCancellationRequested: true } && !context.Response.HasStarted)
        {
            context.Response.StatusCode = StatusCodes.Status504GatewayTimeout;
        }
    }
}
