-- baseline.lua: gives the pools of one hash tag a baseline, once, atomically. debit.lua admits nothing on a
-- tag without one: a Redis that lost its data (a restart without persistence, a FLUSHALL) has lost the marker
-- with the counters, and must not start the window again from zero; one whose writes were found lost (a
-- failover to a replica that had not caught up keeps the marker: StoreBaselines.AuditAsync finds it and
-- takes the marker away) must not go on from too little. The proxy reads the counters and the streams
-- (snapshot.lua), then what the ledger billed, and this script writes what they charged, unless another
-- replica got there first, or an event was written since the snapshot (the proxy then reads again).
--
-- KEYS[1]   the tag's baseline marker
-- KEYS[1+p] pool p's usage hash (see debit.lua); KEYS[1+P+p] pool p's event stream
-- ARGV[1]   now (Unix ms, the proxy's reading of the server's clock); ARGV[2] P, the number of pools
-- then per pool: window start, window end (Unix ms), the stream's last id at the snapshot ('' for none),
--           n, and n field/value pairs: the counters the ledger and the stream charged in this window (empty
--           without a ledger)
-- Reply:    {} when the tag already had a baseline (nothing written); { -1 } when a stream changed since the
--           snapshot (nothing written); else one value per pool:
--           0 the pool's hash held this window and no counter was below the values given (kept as it is),
--           1 restored from the values given, 2 nothing to restore (no hash, no values),
--           3 the hash held this window and the counters below the values given were raised to them

local now, pool_count = tonumber(ARGV[1]), tonumber(ARGV[2])
local KEEP_AFTER_WINDOW_MS = 60000

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {}
end

local at = 3
for p = 1, pool_count do
  local stream, last = KEYS[1 + pool_count + p], ''
  if redis.call('EXISTS', stream) == 1 then
    local info = redis.call('XINFO', 'STREAM', stream)
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then last = info[i + 1] end
    end
  end
  if last ~= ARGV[at + 2] then
    return { -1 }
  end
  at = at + 4 + 2 * tonumber(ARGV[at + 3])
end

local reply = {}
at = 3
for p = 1, pool_count do
  local usage_key = KEYS[1 + p]
  local start, finish, count = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 3])
  local first, last = at + 4, at + 3 + 2 * count
  at = last + 1
  local stored = redis.call('HMGET', usage_key, 'start', 'closed')
  if tonumber(stored[1]) == start then
    reply[p] = 0
    for i = first, last, 2 do
      if (tonumber(redis.call('HGET', usage_key, ARGV[i])) or 0) < tonumber(ARGV[i + 1]) then
        redis.call('HSET', usage_key, ARGV[i], ARGV[i + 1])
        reply[p] = 3
      end
    end
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
