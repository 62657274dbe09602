using System.Security.Cryptography;
using System.Text;

namespace QuotaProxy.Enforcement.Identity;

/// <summary>
/// API keys are kept only as digests, in lower-case hex: SHA-256, or, with a server-side pepper
/// (<c>Quota:Identity:KeyPepper</c>), HMAC-SHA-256 keyed by it, so that a leaked config file alone does not
/// let anyone guess weak keys offline.
/// </summary>
internal static class ApiKeyHash
{
    public static string Compute(string apiKey, string? pepper = null)
    {
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        if (string.IsNullOrEmpty(pepper))
        {
            SHA256.HashData(Encoding.UTF8.GetBytes(apiKey), digest);
        }
        else
        {
            HMACSHA256.HashData(Encoding.UTF8.GetBytes(pepper), Encoding.UTF8.GetBytes(apiKey), digest);
        }

        return Convert.ToHexStringLower(digest);
    }

    public static bool IsWellFormed(string? hash) => hash is { Length: 64 } && hash.All(Uri.IsHexDigit);
}
