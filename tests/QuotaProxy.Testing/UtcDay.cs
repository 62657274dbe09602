namespace QuotaProxy.Testing;

/// <summary>For tests whose requests must all fall on one UTC day (the ledger's daily rollup).</summary>
public static class UtcDay
{
    /// <summary>
    /// Waits, if needed, until at least <paramref name="margin"/> of the current UTC day is left (at most
    /// the margin itself, just past midnight), then returns the day: requests sent within the margin land on it.
    /// </summary>
    public static async Task<DateOnly> WithAtLeastAsync(TimeSpan margin)
    {
        var now = DateTime.UtcNow;
        var left = now.Date.AddDays(1) - now;
        if (left < margin)
        {
            await Task.Delay(left + TimeSpan.FromMilliseconds(100));
        }

        return DateOnly.FromDateTime(DateTime.UtcNow);
    }
}
