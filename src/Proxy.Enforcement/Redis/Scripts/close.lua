-- close.lua: closes a pool after the vendor answered 429, until ARGV[1] (Unix ms). debit.lua then rejects
-- every request of the pool with limited_by = vendor until that time, and carries the closure into the
-- next window while it is still in the future. Concurrent closes keep the latest time.
--
-- KEYS[1]   the pool's usage hash (see debit.lua)
-- ARGV[1]   closed until, Unix ms
-- Reply:    the closure now in force (Unix ms)

local KEEP_AFTER_WINDOW_MS = 60000 -- DebitLayout.KeepAfterWindowMs

local until_ms = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'closed')) or 0
if until_ms <= current then
  return current
end
redis.call('HSET', KEYS[1], 'closed', string.format('%d', until_ms))
-- The hash must outlive the closure (debit.lua's expiry only covers the window).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local needed = until_ms - now + KEEP_AFTER_WINDOW_MS
if redis.call('PTTL', KEYS[1]) < needed then
  redis.call('PEXPIRE', KEYS[1], needed)
end
return until_ms
