using System.Security.Cryptography;
using System.Text;

namespace QuotaProxy.Enforcement.Identity;

/// <summary>API keys are kept only as SHA-256 digests, in lower-case hex.</summary>
internal static class ApiKeyHash
{
    public static string Compute(string apiKey)
    {
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(apiKey), digest);
        return Convert.ToHexStringLower(digest);
    }

    public static bool IsWellFormed(string? hash) => hash is { Length: 64 } && hash.All(Uri.IsHexDigit);
}
