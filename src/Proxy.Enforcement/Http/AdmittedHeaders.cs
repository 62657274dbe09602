using System.Globalization;
using Microsoft.AspNetCore.Http;
using QuotaProxy.Enforcement.Observability;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Http;

/// <summary>
/// The headers of an admitted response: the rate-limit set, and the proxy's own soft-limit, shadow and
/// overage headers. Written as the response starts, so the vendor's own rate-limit headers cannot override ours.
/// </summary>
internal sealed record AdmittedHeaders(HttpResponse Response, QuotaDebit[] Debits, RouteDecision Decision, bool Legacy, UsageForecast? Forecast)
{
    public static void WriteOnStarting(HttpResponse response, QuotaDebit[] debits, RouteDecision decision, bool legacy, UsageForecast? forecast = null) =>
        response.OnStarting(WriteAsync, new AdmittedHeaders(response, debits, decision, legacy, forecast));

    private static Task WriteAsync(object state)
    {
        var (response, debits, decision, legacy, forecast) = (AdmittedHeaders)state;
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

        if (forecast?.Soonest(debits) is { } soonest)
        {
            // A node on the path runs out before its window ends at the rate it is spent: the soonest one.
            var seconds = Math.Max(0, (long)(soonest.ExhaustsAt - DateTimeOffset.FromUnixTimeMilliseconds(decision.Pools[0].NowMs)).TotalSeconds);
            headers[QuotaHeaders.Forecast] = $"exhausts-in={seconds}; pool=\"{soonest.Pool.Name}\"; node=\"{QuotaMetrics.NodeLabel(soonest.Node)}\"";
        }

        return Task.CompletedTask;
    }
}
