namespace QuotaProxy.Testing;

/// <summary>Polling with a deadline: every wait in a test ends, and a timeout says what was last seen.</summary>
public static class Poll
{
    /// <summary>
    /// Runs <paramref name="probe"/> every <paramref name="interval"/> (default 100 ms) until <paramref name="done"/>
    /// holds, and returns what it saw. At <paramref name="within"/> it throws, naming <paramref name="what"/> and the last value seen.
    /// </summary>
    public static async Task<T> UntilAsync<T>(string what, Func<Task<T>> probe, Func<T, bool> done, TimeSpan within, TimeSpan? interval = null)
    {
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            var seen = await probe();
            if (done(seen))
            {
                return seen;
            }

            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException($"Waited {within.TotalSeconds:0.#} s for {what}; last saw {Describe(seen)}.");
            }

            await Task.Delay(interval ?? TimeSpan.FromMilliseconds(100));
        }
    }

    private static string Describe(object? seen) => seen switch
    {
        null => "nothing",
        string text => text,
        System.Collections.IEnumerable items => "[" + string.Join(", ", items.Cast<object?>()) + "]",
        _ => seen.ToString() ?? "",
    };
}
