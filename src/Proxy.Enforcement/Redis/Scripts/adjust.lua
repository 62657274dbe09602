-- adjust.lua: changes an admitted request's charge after its response ended, on every node debit.lua
-- charged, with the running aggregates moved the same way, in the same atomic step as its ledger event:
--   a refund (the route's RefundOn matched): delta = −cost, kind refund;
--   a settlement (the route's CostFromResponseHeader): delta = actual − reserved, kind adjustment; the
--   proxy reserves the route's MaxCost and caps the actual cost to it, so a settlement is never positive
--   (a positive delta, if one were sent, would be charged even past a limit).
-- A pool whose window has moved on since the debit keeps its counters (they belonged to a window that
-- is over), but the ledger event is still written: billing follows what happened. Rates are not adjusted.
--
-- KEYS[p]    pool p's usage hash (see debit.lua)
-- KEYS[P+p]  when the ledger is on (ARGV[3] not empty): pool p's event stream; one entry with the delta
--            as its credits, packed as debit.lua packs its events
-- ARGV[1]    delta (credits, ≠ 0; negative gives credits back)
-- ARGV[2]    P, the number of pools
-- ARGV[3]    the route, or empty when the ledger is off; ARGV[4] the tenant's path; ARGV[5] the request id
-- ARGV[6]    the event's kind: refund or adjustment
-- ARGV[7]    an operation id, or empty. With one, the last KEY is that operation's marker: the first call
--            that carries it adjusts, any later one (a retry, or an earlier attempt that reaches Redis late)
--            changes nothing and replies with no pools. A compensation may then be retried safely.
-- ARGV[8]    the id of the debit's own event in pool 1's stream, or empty. With one, the adjustment is
--            made only where that debit is: when the event is not in this Redis's stream (flushed, or never
--            here, such as a debit a demoted master took and then lost), nothing changes and the reply is
--            { -1 }. So giving back a decision the proxy answered 503 for can never take from a counter that
--            does not hold it.
-- ARGV[9..]  one block per pool: the start of the window the debit was made in (Unix ms), then the path
--            exactly as debit.lua takes it: the records' format, the packed records, the fields
-- Reply:     per pool, 1 if its counters moved, 0 if its window had moved on

-- The layout of the packed records, named as in DebitLayout.cs (DebitLayoutTests holds the two to the
-- same values). Offsets are 0-based from the start of their record.
local ADJUST_OPERATION, ADJUST_DEBIT_EVENT, ADJUST_HEADER_LENGTH, OPERATION_TTL_MS = 6, 7, 8, 3600000
local BLOCK_WINDOW_START, BLOCK_FORMAT, BLOCK_RECORDS, ADJUST_BLOCK_HEADER_LENGTH = 0, 1, 2, 3
local PATH_FIELD_COUNT, PATH_DEPTH, PATH_HEAD_LENGTH = 0, 1, 2
local NODE_USED_FIELD, POOL_RECORD_LENGTH = 0, 5
local TENANT_GUARANTEED, TENANT_ALLOCATION, TENANT_GUARANTEE_FIELD, TENANT_LEVEL_FIELD = 5, 6, 7, 8
local TENANT_LEVEL_COUNT, TENANT_RECORD_LENGTH, LEVEL_LENGTH = 10, 11, 2

local delta = tonumber(ARGV[1])
local pool_count = tonumber(ARGV[2])
local route, tenant, request_id, kind = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local min, max, tonumber = math.min, math.max, tonumber

local debit_event = ARGV[1 + ADJUST_DEBIT_EVENT]
if debit_event ~= '' and #redis.call('XRANGE', KEYS[pool_count + 1], debit_event, debit_event) == 0 then
  return { -1 }
end

if ARGV[1 + ADJUST_OPERATION] ~= '' and not redis.call('SET', KEYS[#KEYS], '1', 'NX', 'PX', OPERATION_TTL_MS) then
  return {}
end

local reply = {}
local block = ADJUST_HEADER_LENGTH + 1
for p = 1, pool_count do
  local usage_key = KEYS[p]
  local window_start = tonumber(ARGV[block + BLOCK_WINDOW_START])
  local rec = { struct.unpack(ARGV[block + BLOCK_FORMAT], ARGV[block + BLOCK_RECORDS]) }
  local read_count, depth = rec[1 + PATH_FIELD_COUNT], rec[1 + PATH_DEPTH]
  local FIRST_FIELD = block + ADJUST_BLOCK_HEADER_LENGTH
  local at = 1 + PATH_HEAD_LENGTH
  local stored = redis.call('HMGET', usage_key, 'start', unpack(ARGV, FIRST_FIELD, FIRST_FIELD + read_count - 1))
  local function value(i) return tonumber(stored[i + 1]) or 0 end

  local writes, w = {}, 0
  for index = 0, depth do
    local used_index = rec[at + NODE_USED_FIELD]
    local used = value(used_index)
    local after = max(0, used + delta)
    writes[w + 1], writes[w + 2] = ARGV[FIRST_FIELD - 1 + used_index], after
    w = w + 2
    if index == 0 then
      at = at + POOL_RECORD_LENGTH
    else
      local guaranteed, allocation = rec[at + TENANT_GUARANTEED], rec[at + TENANT_ALLOCATION]
      local guarantee_index, level_index = rec[at + TENANT_GUARANTEE_FIELD], rec[at + TENANT_LEVEL_FIELD]
      local change = min(after, guaranteed) - min(used, guaranteed)
      if guarantee_index > 0 and change ~= 0 then
        writes[w + 1], writes[w + 2] = ARGV[FIRST_FIELD - 1 + guarantee_index], value(guarantee_index) + change
        w = w + 2
      end
      change = (min(after, allocation) - min(after, guaranteed)) - (min(used, allocation) - min(used, guaranteed))
      if level_index > 0 and change ~= 0 then
        writes[w + 1], writes[w + 2] = ARGV[FIRST_FIELD - 1 + level_index], value(level_index) + change
        w = w + 2
      end
      at = at + TENANT_RECORD_LENGTH + LEVEL_LENGTH * rec[at + TENANT_LEVEL_COUNT]
    end
  end
  local rate_count = rec[at] -- the rates are not adjusted, and the leases are released on their own

  if tonumber(stored[1]) == window_start then
    redis.call('HSET', usage_key, unpack(writes))
    reply[p] = 1
  else
    reply[p] = 0
  end
  if route ~= '' then
    local time = redis.call('TIME')
    local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    redis.call('XADD', KEYS[pool_count + p], '*', 'e',
      string.format('%d %d ', now, delta) .. kind .. ' 0 ' .. #tenant .. ' ' .. #route .. ' ' .. tenant .. route .. request_id)
  end
  block = FIRST_FIELD + read_count + rate_count
end
return reply
