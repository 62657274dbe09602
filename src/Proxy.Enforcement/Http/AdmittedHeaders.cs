using System.Globalization;
using Microsoft.AspNetCore.Http;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Http;

/// <summary>
/// The headers of an admitted response: the rate-limit set, and the proxy's own soft-limit, shadow and
/// overage headers. Written as the response starts, so the vendor's own rate-limit headers cannot override ours.
/// </summary>
internal sealed record AdmittedHeaders(HttpResponse Response, QuotaDebit[] Debits, RouteDecision Decision, bool Legacy)
{
    public static void WriteOnStarting(HttpResponse response, QuotaDebit[] debits, RouteDecision decision, bool legacy) =>
        response.OnStarting(WriteAsync, new AdmittedHeaders(response, debits, decision, legacy));

    private static Task WriteAsync(object state)
    {
        var (response, debits, decision, legacy) = (AdmittedHeaders)state;
        var headers = response.Headers;
        RateLimitHeaders.Write(headers, debits, decision, legacy);
        headers[QuotaHeaders.Charged] = QuotaHeaders.ChargedValue(AdmittedRequest.ChargedAtAdmission(debits, decision));
        long overage = 0;
        for (var i = 0; i < debits.Length; i++)
        {
            var (pool, poolDecision) = (debits[i].Pool.Name, decision.Pools[i]);
            if (poolDecision.SoftLimitNode is { } soft)
            {
                headers.Append(QuotaHeaders.Warning, $"soft-limit; pool=\"{pool}\"; node=\"{QuotaMetrics.NodeLabel(soft)}\"; soft-limit={soft.SoftLimit}");
            }

            if (poolDecision.Shadow)
            {
                headers.Append(QuotaHeaders.Shadow, $"would-reject; limited-by={QuotaProblems.LimitedByName(poolDecision.LimitedBy)}; node=\"{QuotaMetrics.NodeLabel(poolDecision.LimitingNode!)}\"");
            }

            overage = Math.Max(overage, poolDecision.OverageCredits);
        }

        if (overage > 0)
        {
            headers[QuotaHeaders.Overage] = overage.ToString(CultureInfo.InvariantCulture);
        }

        return Task.CompletedTask;
    }
}
