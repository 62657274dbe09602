-- debit.lua: one quota decision for one pool, atomic: the tenant ceiling and the pool limit are
-- both checked against the cost, and both debited or neither. Same rule as InProcessQuotaStore.
--
-- The window is chosen by THIS REDIS SERVER'S CLOCK (TIME), so proxy replicas whose clocks drift
-- cannot open the same window twice. Tests may pass their own clock in ARGV[1].
--
-- KEYS[1]   the pool's usage hash, fields:
--             start, end   the window the counters belong to (Unix ms)
--             pool         credits used in the pool this window
--             t:<tenant>   credits used by one tenant this window
-- ARGV[1]   now in Unix ms, or 0 to read the server clock
-- ARGV[2]   cost (credits, > 0)
-- ARGV[3]   tenant name
-- ARGV[4]   pool limit
-- ARGV[5]   tenant limit
-- ARGV[6]   fixed window length in ms (1s, 1m, 1h), or 0 for a calendar window (1d, 1mo)
-- ARGV[7]   fixed windows: the zone's UTC offset in ms, modulo the length
-- ARGV[8..11] calendar windows, as the proxy's clock sees them: previous start, start, end, next end
--
-- Reply: { admitted (1|0), limited_by (0 none, 1 tenant, 2 pool), pool_used, tenant_used,
--          window_start_ms, window_end_ms, now_ms }
-- Error: 'QP_CLOCK_SKEW' when the server clock is outside the three calendar windows offered.

local usage_key = KEYS[1]
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local tenant_field = 't:' .. ARGV[3]
local pool_limit = tonumber(ARGV[4])
local tenant_limit = tonumber(ARGV[5])
local fixed_length = tonumber(ARGV[6])

local LIMITED_BY_NONE, LIMITED_BY_TENANT, LIMITED_BY_POOL = 0, 1, 2
local KEEP_AFTER_WINDOW_MS = 60000

if now == 0 then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local window_start, window_end
if fixed_length > 0 then
  local offset = tonumber(ARGV[7])
  window_start = now - ((now + offset) % fixed_length)
  window_end = window_start + fixed_length
else
  local previous_start, start, finish, next_end =
    tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
  if now >= start and now < finish then
    window_start, window_end = start, finish
  elseif now >= previous_start and now < start then
    window_start, window_end = previous_start, start
  elseif now >= finish and now < next_end then
    window_start, window_end = finish, next_end
  else
    return redis.error_reply('QP_CLOCK_SKEW server clock ' .. now .. ' outside [' .. previous_start .. ', ' .. next_end .. ')')
  end
end

local stored = redis.call('HMGET', usage_key, 'start', 'end', 'pool', tenant_field)
local stored_start = tonumber(stored[1])
local pool_used, tenant_used

-- A new window starts from zero: no reset job, the first decision in it clears the counters.
if stored_start == nil or window_start > stored_start then
  redis.call('DEL', usage_key)
  redis.call('HSET', usage_key, 'start', window_start, 'end', window_end, 'pool', 0)
  -- Memory cleanup only (the start check above is what resets): kept a minute past the window's end.
  redis.call('PEXPIRE', usage_key, window_end - now + KEEP_AFTER_WINDOW_MS)
  pool_used, tenant_used = 0, 0
else
  window_start, window_end = stored_start, tonumber(stored[2])
  pool_used, tenant_used = tonumber(stored[3]) or 0, tonumber(stored[4]) or 0
end

-- When both would be exceeded the pool is named: it is what ran dry for everyone.
local limited_by = LIMITED_BY_NONE
if pool_used + cost > pool_limit then
  limited_by = LIMITED_BY_POOL
elseif tenant_used + cost > tenant_limit then
  limited_by = LIMITED_BY_TENANT
end

if limited_by == LIMITED_BY_NONE then
  pool_used = redis.call('HINCRBY', usage_key, 'pool', cost)
  tenant_used = redis.call('HINCRBY', usage_key, tenant_field, cost)
end

return { limited_by == LIMITED_BY_NONE and 1 or 0, limited_by, pool_used, tenant_used, window_start, window_end, now }
