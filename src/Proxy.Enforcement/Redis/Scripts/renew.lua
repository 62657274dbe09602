-- renew.lua: a request is still in flight: its lease's expiry moves on by the lease TTL in the in-flight set
-- of every node that holds it, so a request longer than the TTL keeps its slot (and MaxInFlight holds for
-- the vendor). A lease released or expired meanwhile is not brought back (ZADD XX).
--
-- KEYS      the lease sets of the nodes on the request's paths
-- ARGV[1]   the lease id
-- ARGV[2]   the lease TTL, ms
-- ARGV[3]   now (Unix ms) when the proxy's clock decides (tests only), else 0: this server's clock
-- Reply:    how many sets still held it

local KEEP_AFTER_WINDOW_MS = 60000 -- DebitLayout.KeepAfterWindowMs
local now = tonumber(ARGV[3])
if now == 0 then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local ttl = tonumber(ARGV[2])
local renewed = 0
for _, key in ipairs(KEYS) do
  if redis.call('ZSCORE', key, ARGV[1]) then
    redis.call('ZADD', key, 'XX', now + ttl, ARGV[1])
    redis.call('PEXPIRE', key, ttl + KEEP_AFTER_WINDOW_MS)
    renewed = renewed + 1
  end
end
return renewed
