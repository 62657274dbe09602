using QuotaProxy.Enforcement.Quotas;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>A pool's window packed for debit.lua.</summary>
/// <param name="Calendar">The calendar windows it was packed from (the pool keeps one instance per window), or null for a fixed window.</param>
/// <param name="OffsetMs">A fixed window's zone offset it was packed with.</param>
internal sealed record PackedWindow(CalendarWindows? Calendar, long OffsetMs, RedisValue Packed);
