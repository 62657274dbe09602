-- snapshot.lua: what one hash tag's pools hold, read in one atomic step, to hold against the ledger: each
-- pool's usage hash and, with the ledger on, its event stream (the usage events not yet trimmed: those still
-- to be written to the ledger, and some just written) with the last id the stream ever gave. A counter below
-- what the ledger and the stream together charged to it has lost writes (a failover to a replica that had
-- not caught up): StoreBaselines raises it back. Read-only.
--
-- KEYS[2p-1] pool p's usage hash; KEYS[2p] its event stream (none when the ledger is off: read as empty)
-- ARGV[1]    P, the number of pools; ARGV[2] the most stream entries read per pool
-- Reply:     { now (Unix ms, the server's clock), then per pool: { the hash's fields and values },
--              the stream's last generated id ('' without one), its entries as XRANGE gives them, or 0 when
--              it holds more than ARGV[2] (too long to read: not compared) }

local pool_count, most = tonumber(ARGV[1]), tonumber(ARGV[2])
local time = redis.call('TIME')
local reply = { tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) }
for p = 1, pool_count do
  reply[#reply + 1] = redis.call('HGETALL', KEYS[2 * p - 1])
  local stream = KEYS[2 * p]
  local last, entries = '', {}
  if redis.call('EXISTS', stream) == 1 then
    local info = redis.call('XINFO', 'STREAM', stream)
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then last = info[i + 1] end
    end
    if redis.call('XLEN', stream) > most then
      entries = 0
    else
      entries = redis.call('XRANGE', stream, '-', '+')
    end
  end
  reply[#reply + 1] = last
  reply[#reply + 1] = entries
end
return reply
