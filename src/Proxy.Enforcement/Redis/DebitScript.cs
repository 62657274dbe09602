using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>The C# side of <c>debit.lua</c>: owns the order of its KEYS and ARGV and reads its reply.</summary>
internal static class DebitScript
{
    public static readonly string Source = LoadEmbedded("debit.lua");

    /// <summary>SHA-1 of <see cref="Source"/>: the hot path sends EVALSHA with it, so neither side hashes the script per call.</summary>
    public static readonly byte[] Sha1 = SHA1.HashData(Encoding.UTF8.GetBytes(Source));

    public const string ClockSkewError = "QP_CLOCK_SKEW";

    /// <param name="nowMs">The caller's clock in Unix ms, or 0 to let the Redis server's clock decide.</param>
    public static (RedisKey[] Keys, RedisValue[] Args) Arguments(RedisKeys keys, in QuotaDebit debit, DateTimeOffset proxyNow, long nowMs)
    {
        var pool = debit.Pool;
        RedisValue[] args;
        if (pool.Window.IsCalendar)
        {
            // The proxy offers the window its own clock sees and both neighbours; the server picks by its clock.
            var windows = pool.CalendarAround(proxyNow);
            args = [nowMs, debit.Cost, debit.Tenant.Name, pool.Limit, debit.Tenant.Limit, 0, 0, windows.Previous.StartMs, windows.Current.StartMs, windows.Current.EndMs, windows.Next.EndMs];
        }
        else
        {
            var lengthMs = (long)pool.Window.FixedLength.TotalMilliseconds;
            var offsetMs = pool.Window.FixedOffsetMilliseconds(proxyNow, pool.TimeZone);
            args = [nowMs, debit.Cost, debit.Tenant.Name, pool.Limit, debit.Tenant.Limit, lengthMs, offsetMs];
        }

        return ([keys.PoolUsage(pool.Name)], args);
    }

    public static QuotaDecision Read(RedisResult result, in QuotaDebit debit)
    {
        var reply = (long[])result!;
        return new QuotaDecision(
            Admitted: reply[0] == 1,
            LimitedBy: (QuotaLimitedBy)reply[1],
            PoolUsed: reply[2],
            TenantUsed: reply[3],
            PoolLimit: debit.Pool.Limit,
            TenantLimit: debit.Tenant.Limit,
            Window: new WindowBounds(reply[4], reply[5]),
            NowMs: reply[6]);
    }

    private static string LoadEmbedded(string fileName)
    {
        var name = $"QuotaProxy.Enforcement.Redis.Scripts.{fileName}";
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"Embedded script {name} is missing from the build.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
