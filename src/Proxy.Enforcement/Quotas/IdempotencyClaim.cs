using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace QuotaProxy.Enforcement.Quotas;

/// <summary>
/// A request's idempotency key on a route whose vendor honours it: the key, the fingerprint of the request it
/// was first sent with (tenant, route, method, path and query, body digest), and how many retries of it are
/// free in a window. The window field <c>i:&lt;tenant&gt;:&lt;key&gt;</c> holds
/// <c>fingerprint × <see cref="ReplayCountRange"/> + replays so far</c>: a retry of the same request is
/// admitted for no credits while replays are left (still through the closure, <c>Rate</c> and
/// <c>MaxInFlight</c>); past them it is charged like any request; a different request under the key is refused.
/// </summary>
internal sealed record IdempotencyClaim(string Key, long Fingerprint, int MaxReplays)
{
    /// <summary>The replay count's share of the field's value: the fingerprint × this, plus the count.</summary>
    public const long ReplayCountRange = 1024;

    /// <summary>40 bits of SHA-256: the field's value stays an integer a Lua number holds exactly (below 2^53).</summary>
    private const long FingerprintMask = (1L << 40) - 1;

    /// <summary>The fingerprint of a request: never 0, so a field's value always names its request.</summary>
    public static long FingerprintOf(string tenant, string route, string method, string pathAndQuery, ReadOnlySpan<byte> bodyDigest)
    {
        var text = Encoding.UTF8.GetBytes($"{tenant}\n{route}\n{method.ToUpperInvariant()}\n{pathAndQuery}\n");
        var input = new byte[text.Length + bodyDigest.Length];
        text.CopyTo(input, 0);
        bodyDigest.CopyTo(input.AsSpan(text.Length));
        var fingerprint = BinaryPrimitives.ReadInt64LittleEndian(SHA256.HashData(input)) & FingerprintMask;
        return fingerprint == 0 ? 1 : fingerprint;
    }
}
