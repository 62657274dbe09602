using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Admin;

/// <summary>A node's burn rate (credits an hour) and, when it runs out before its window ends at that rate, when.</summary>
internal sealed record ForecastStatus(double BurnPerHour, DateTimeOffset? ExhaustsAt)
{
    public static ForecastStatus? Of(UsageForecast.Forecast? forecast) =>
        forecast is null ? null : new ForecastStatus(Math.Round(forecast.CreditsPerSecond * 3600, 1), forecast.ExhaustsAt);
}
