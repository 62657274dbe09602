-- debit.lua: one quota decision for one pool's tenant tree, atomic. Every node from the pool down to the
-- caller is checked against the cost, and all of them are debited or none. The rule, the field layout
-- and the order of checks are those of TreeAdmission.cs (the in-process store); a differential test
-- holds the two to identical decisions and identical counters.
--
-- The window is chosen by THIS REDIS SERVER'S CLOCK (TIME), so proxy replicas whose clocks drift
-- cannot open the same window twice. Tests may pass their own clock in ARGV[1].
--
-- KEYS[1]   the pool's usage hash for its current window, fields:
--             start, end        the window the counters belong to (Unix ms)
--             pool, t:<path>    credits used by the pool and by each tenant node (with all below it)
--             g:<parent>        Σ min(used, Guaranteed) over the parent's children
--             d:<parent>:<q>    Σ (min(used, Allocation) − min(used, Guaranteed)) over its children of priority q
-- ARGV[1]   now in Unix ms, or 0 to read the server clock
-- ARGV[2]   cost (credits, > 0)
-- ARGV[3]   fixed window length in ms (1s, 1m, 1h), or 0 for a calendar window (1d, 1mo)
-- ARGV[4]   fixed windows: the zone's UTC offset in ms, modulo the length
-- ARGV[5..8] calendar windows, as the proxy's clock sees them: previous start, start, end, next end
-- ARGV[9]   depth: the number of tenant nodes on the path (the root is not counted)
-- ARGV[10..] one record per node, the pool first, then down to the caller:
--             pool:   field, limit, overage, soft limit (-1: none), shadow (1|0)
--             tenant: the same five, then guaranteed, allocation, the parent's g: field, the parent's
--                     d: field for this node's priority, Σ Guaranteed of the parent's children, k, and
--                     k pairs (d: field, Σ (Allocation − Guaranteed) at that level) for the sibling
--                     levels of higher priority than this node
--           Field names arrive ready-made, so the script builds no strings per call.
--
-- Reply: { admitted (1|0), limited_by (0 none, 1 tenant, 2 pool, 3 reserved), limiting node index
--          (0 the pool, i the i-th tenant from the top, -1 none), caller's used, remaining, window_start_ms,
--          window_end_ms, now_ms, overage credits, soft-limit node index (-1 none), soft limit crossed now
--          (1|0), shadow (1|0: admitted only because every failing node is in shadow mode), pool's used }
-- Error: 'QP_CLOCK_SKEW' when the server clock is outside the three calendar windows offered.

local usage_key = KEYS[1]
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local fixed_length = tonumber(ARGV[3])
local depth = tonumber(ARGV[9])

local NONE, TENANT, POOL, RESERVED = 0, 1, 2, 3
local KEEP_AFTER_WINDOW_MS = 60000

-- The path, pool first: nodes[0] is the pool, nodes[depth] the caller.
local nodes = {}
local at = 10
for index = 0, depth do
  local node = {
    field = ARGV[at], limit = tonumber(ARGV[at + 1]), overage = tonumber(ARGV[at + 2]),
    soft = tonumber(ARGV[at + 3]), shadow = ARGV[at + 4] == '1', levels = {},
  }
  at = at + 5
  if index > 0 then
    local parent = nodes[index - 1]
    node.guaranteed, node.allocation = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
    node.parent = parent
    node.g_field, node.d_field = ARGV[at + 2], ARGV[at + 3]
    node.parent_guaranteed_sum = tonumber(ARGV[at + 4])
    local level_count = tonumber(ARGV[at + 5])
    at = at + 6
    for level = 1, level_count do
      node.levels[level] = { field = ARGV[at], sum = tonumber(ARGV[at + 1]) }
      at = at + 2
    end
  end
  nodes[index] = node
end

if now == 0 then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local window_start, window_end
if fixed_length > 0 then
  local offset = tonumber(ARGV[4])
  window_start = now - ((now + offset) % fixed_length)
  window_end = window_start + fixed_length
else
  local previous_start, start, finish, next_end = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
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

-- One HMGET for every field the decision reads.
local names = { 'start', 'end' }
for index = 0, depth do
  local node = nodes[index]
  names[#names + 1] = node.field
  if index > 0 then
    names[#names + 1] = node.g_field
    names[#names + 1] = node.d_field
    for _, level in ipairs(node.levels) do names[#names + 1] = level.field end
  end
end
local stored = redis.call('HMGET', usage_key, unpack(names))

local value = {}
local stored_start = tonumber(stored[1])
-- A new window starts from zero: no reset job, the first decision in it clears the counters.
if stored_start == nil or window_start > stored_start then
  redis.call('DEL', usage_key)
  redis.call('HSET', usage_key, 'start', window_start, 'end', window_end)
  -- Memory cleanup only (the start check above is what resets): kept a minute past the window's end.
  redis.call('PEXPIRE', usage_key, window_end - now + KEEP_AFTER_WINDOW_MS)
else
  window_start, window_end = stored_start, tonumber(stored[2])
  for i = 3, #names do value[names[i]] = tonumber(stored[i]) end
end

local function get(field) return value[field] or 0 end

-- max(Guaranteed(n) − u(n), R − Σ claims of n's siblings), from the parent's running aggregates.
local function share_room(node, used)
  local parent = node.parent
  local left = parent.limit - get(parent.field)
  local unused_guarantee = node.guaranteed - math.min(used, node.guaranteed)
  local claims = node.parent_guaranteed_sum - get(node.g_field) - unused_guarantee
  for _, level in ipairs(node.levels) do claims = claims + level.sum - get(level.field) end
  return math.max(node.guaranteed - used, left - claims)
end

local function failure(index)
  local node = nodes[index]
  local used = get(node.field)
  if used + cost > node.limit + node.overage then
    if index == 0 then return POOL end
    return TENANT
  end
  if index > 0 and cost > share_room(node, used) then return RESERVED end
  return NONE
end

local function remaining()
  local smallest = nil
  for index = 0, depth do
    local node = nodes[index]
    local used = get(node.field)
    local room = node.limit + node.overage - used
    if index > 0 then room = math.min(room, share_room(node, used)) end
    if smallest == nil or room < smallest then smallest = room end
  end
  return math.max(0, smallest)
end

-- The first failing check from the pool down: an enforcing node rejects, a shadow node only reports.
local limited_by, limiting, shadow_limited_by, shadow_limiting = NONE, -1, NONE, -1
for index = 0, depth do
  local found = failure(index)
  if found ~= NONE then
    if not nodes[index].shadow then
      limited_by, limiting = found, index
      break
    elseif shadow_limited_by == NONE then
      shadow_limited_by, shadow_limiting = found, index
    end
  end
end

if limited_by ~= NONE then
  return { 0, limited_by, limiting, get(nodes[depth].field), remaining(), window_start, window_end, now, 0, -1, 0, 0,
           get(nodes[0].field) }
end

local overage, soft_index, soft_crossed = 0, -1, 0
local writes = {}
for index = 0, depth do
  local node = nodes[index]
  local before = get(node.field)
  local after = before + cost
  if index > 0 then
    value[node.g_field] = get(node.g_field) + math.min(after, node.guaranteed) - math.min(before, node.guaranteed)
    local above_after = math.min(after, node.allocation) - math.min(after, node.guaranteed)
    local above_before = math.min(before, node.allocation) - math.min(before, node.guaranteed)
    value[node.d_field] = get(node.d_field) + above_after - above_before
    writes[#writes + 1] = node.g_field
    writes[#writes + 1] = value[node.g_field]
    writes[#writes + 1] = node.d_field
    writes[#writes + 1] = value[node.d_field]
    overage = math.max(overage, math.min(math.max(after - node.limit, 0), cost))
  end
  value[node.field] = after
  writes[#writes + 1] = node.field
  writes[#writes + 1] = after
  if soft_index == -1 and node.soft >= 0 and after > node.soft then
    soft_index = index
    if before <= node.soft then soft_crossed = 1 end
  end
end
redis.call('HSET', usage_key, unpack(writes))

local shadow = 0
if shadow_limited_by ~= NONE then shadow = 1 end
return { 1, shadow_limited_by, shadow_limiting, get(nodes[depth].field), remaining(), window_start, window_end, now,
         overage, soft_index, soft_crossed, shadow, get(nodes[0].field) }
