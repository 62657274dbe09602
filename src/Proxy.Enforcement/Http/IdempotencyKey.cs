using Microsoft.AspNetCore.Http;

namespace QuotaProxy.Enforcement.Http;

/// <summary>The caller's idempotency key: one header value of visible ASCII, at most <see cref="MaxLength"/> characters.</summary>
internal static class IdempotencyKey
{
    public const int MaxLength = 200;

    /// <returns>False when the header is present but not a usable key; <paramref name="key"/> is null when there is none.</returns>
    public static bool TryRead(IHeaderDictionary headers, string header, out string? key)
    {
        key = null;
        if (header.Length == 0 || headers[header] is not { Count: > 0 } values)
        {
            return true;
        }

        key = values.ToString();
        return values.Count == 1 && key.Length is > 0 and <= MaxLength && !key.Any(c => c is < '!' or > '~');
    }
}
