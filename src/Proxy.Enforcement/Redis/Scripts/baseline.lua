-- baseline.lua: gives the pools of one hash tag a baseline, once, atomically. debit.lua admits nothing on a
-- tag without one: a Redis that lost its data (a restart without persistence, a failover to a replica that
-- had not caught up, a FLUSHALL) has lost the marker with the counters, and must not start the window again
-- from zero. The proxy reads what the ledger billed in each pool's current window, and this script writes
-- it as the counters, unless another replica got there first.
--
-- KEYS[1]   the tag's baseline marker
-- KEYS[1+p] pool p's usage hash (see debit.lua)
-- ARGV[1]   now (Unix ms, the proxy's reading of the server's clock); ARGV[2] P, the number of pools
-- then per pool: window start, window end (Unix ms), n, and n field/value pairs: the counters the ledger
--           gives this window (empty without a ledger)
-- Reply:    {} when the tag already had a baseline (nothing written); else one value per pool:
--           0 the pool's hash already held this window (kept as it is: its counters are newer than any
--             ledger), 1 restored from the values given, 2 nothing to restore (no hash, no values)

local now, pool_count = tonumber(ARGV[1]), tonumber(ARGV[2])
local KEEP_AFTER_WINDOW_MS = 60000

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {}
end

local reply = {}
local at = 3
for p = 1, pool_count do
  local usage_key = KEYS[1 + p]
  local start, finish, count = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  local first, last = at + 3, at + 2 + 2 * count
  at = last + 1
  local stored = redis.call('HMGET', usage_key, 'start', 'closed')
  if tonumber(stored[1]) == start then
    reply[p] = 0
  elseif count == 0 then
    reply[p] = 2
  else
    -- A vendor closure written since the loss (close.lua) stays.
    local closed = tonumber(stored[2]) or 0
    redis.call('DEL', usage_key)
    redis.call('HSET', usage_key, 'start', start, 'end', finish, unpack(ARGV, first, last))
    if closed > now then redis.call('HSET', usage_key, 'closed', closed) end
    redis.call('PEXPIRE', usage_key, math.max(finish, closed) - now + KEEP_AFTER_WINDOW_MS)
    reply[p] = 1
  end
end
redis.call('SET', KEYS[1], now)
return reply
