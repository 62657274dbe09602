-- lease-sweep.lua: claims the credit leases whose replica died, and drops the records of leases long over.
-- A live replica closes each lease it holds (lease-record.lua, unspent -1) when it ends; an open record
-- past its end by more than the grace belongs to a replica that stopped without closing it (or cannot reach
-- the store). Its unspent credits stay counted as used (the allowance is never over-admitted) and were
-- never billed; the sweep counts them once, whoever runs it, marks the record claimed (-2), and with the
-- ledger on records them as a 'lease' event (billing leaves those out), so that the ledger's net per
-- tenant stays equal to the counters. Closed and claimed records are kept a while longer, so that a record
-- a replica sends again late still applies at most once.
--
-- KEYS[1]  the pool's lease records (see lease-record.lua)
-- KEYS[2]  the pool's event stream
-- ARGV[1]  now in Unix ms, or 0 for Redis's own clock (the clock the leases' ends were written with)
-- ARGV[2]  grace in ms: how long past its end an open lease may still be closed by its replica
-- ARGV[3]  the route the events name
-- ARGV[4]  how long past its end a closed or claimed record is kept, in ms
-- Reply:   { leases claimed, their unspent credits }
local now = tonumber(ARGV[1])
if now == 0 then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local grace, route, keep = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local records = redis.call('HGETALL', KEYS[1])
local claimed, credits = 0, 0
for i = 1, #records, 2 do
  local expires, unspent, sequence, tenant = string.match(records[i + 1], '^(%-?%d+) (%-?%d+) (%d+) ?(.*)$')
  if expires then
    expires, unspent = tonumber(expires), tonumber(unspent)
    if unspent < 0 then
      if expires + keep < now then
        redis.call('HDEL', KEYS[1], records[i])
      end
    elseif expires + grace < now then
      redis.call('HSET', KEYS[1], records[i], expires .. ' -2 ' .. sequence .. ' ' .. tenant)
      claimed = claimed + 1
      credits = credits + unspent
      if unspent > 0 and tenant ~= '' then
        redis.call('XADD', KEYS[2], '*', 'e', string.format('%d %d lease 0 %d %d ', now, unspent, #tenant, #route) .. tenant .. route)
      end
    end
  end
end
return { claimed, credits }
