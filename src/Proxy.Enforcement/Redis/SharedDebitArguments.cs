using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>debit.lua's ARGV for the commonest call on a node, and what it was built for; StackExchange.Redis only reads it.</summary>
internal sealed record SharedDebitArguments(PackedWindow Window, long Cost, long LeaseMs, long MaxBacklog, long DeadlineMicros, RedisValue[] Args);
