using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy.Forwarder;

namespace QuotaProxy.Enforcement.Http;

/// <summary>
/// Every error the proxy or the admin API answers itself is <c>application/problem+json</c>, the framework's
/// own included: no route (404), a wrong method (405), a body the admin API cannot read (400), the vendor
/// unreachable (502), an unhandled exception (500). A vendor's own answer, whatever its status, passes
/// through untouched: only a response with no body that the vendor did not give is written here.
/// </summary>
public static class FrameworkProblems
{
    public static IServiceCollection AddFrameworkProblems(this IServiceCollection services) => services.AddProblemDetails();

    public static WebApplication UseFrameworkProblems(this WebApplication app)
    {
        app.UseExceptionHandler(new ExceptionHandlerOptions { StatusCodeSelector = _ => StatusCodes.Status500InternalServerError });
        app.UseStatusCodePages(new StatusCodePagesOptions { HandleAsync = WriteAsync });
        return app;
    }

    private static async Task WriteAsync(StatusCodeContext status)
    {
        var http = status.HttpContext;
        if (http.Response.ContentLength is > 0 || http.Response.ContentType is not null || ForwardedByTheVendor(http))
        {
            return;
        }

        var code = http.Response.StatusCode;
        var (type, title, detail) = code switch
        {
            StatusCodes.Status404NotFound => ("not-found", "Not found", "No route matches this path."),
            StatusCodes.Status405MethodNotAllowed => ("method-not-allowed", "Method not allowed", $"{http.Request.Method} is not allowed on this path."),
            StatusCodes.Status502BadGateway => ("vendor-unreachable", "Vendor unreachable", "The proxy could not get an answer from the vendor."),
            StatusCodes.Status504GatewayTimeout => ("vendor-timeout", "Vendor timed out", "The vendor did not answer within the route's timeout."),
            StatusCodes.Status400BadRequest => ("bad-request", "Bad request", "The request could not be read (malformed JSON, a missing or mistyped field, or a bad header)."),
            StatusCodes.Status415UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type", "Send the body as application/json."),
            _ => ("http-" + code, ReasonPhrases.GetReasonPhrase(code), null),
        };
        http.Response.ContentType = QuotaProblems.ContentType;
        var problem = new ProblemDetails { Type = $"urn:quotaproxy:problem:{type}", Title = title, Status = code, Detail = detail };
        if (http.Features.Get<IForwarderErrorFeature>() is { Error: not ForwarderError.None } forwarder)
        {
            problem.Extensions["forwarderError"] = forwarder.Error.ToString();
        }

        await http.Response.WriteAsJsonAsync(problem, (System.Text.Json.JsonSerializerOptions?)null, QuotaProblems.ContentType);
    }

    /// <summary>A response YARP copied from the vendor (it reached the vendor and no forwarder error was recorded).</summary>
    private static bool ForwardedByTheVendor(HttpContext http) =>
        http.Features.Get<Yarp.ReverseProxy.Model.IReverseProxyFeature>() is not null
        && http.Features.Get<IForwarderErrorFeature>() is null
        && http.Response.StatusCode != StatusCodes.Status504GatewayTimeout;
}
