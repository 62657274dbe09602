-- debit.lua: one quota decision for a route's pools (usually one), atomic. In every pool, every node
-- from the pool down to the caller is checked against the cost, and all of them in all the pools are
-- debited or none. The pools of one route share a hash tag, so the decision touches one cluster slot. The rule, the field layout
-- and the order of checks are those of TreeAdmission.cs (the in-process store); a differential test
-- holds the two to identical decisions and identical counters.
--
-- The window is chosen by THIS REDIS SERVER'S CLOCK (TIME), so proxy replicas whose clocks drift
-- cannot open the same window twice. Tests may pass their own clock in ARGV_NUMBERS.
--
-- The order of checks: the pool closed by a vendor 429, then every node's credits from the pool down,
-- then every node's rate from the pool down, then every node's requests in flight from the pool down. The first failure on an enforcing node rejects; failures on
-- nodes in shadow mode are only reported.
--
-- KEYS[2p-1] pool p's usage hash for its current window, fields:
--             start, end        the window the counters belong to (Unix ms)
--             closed            the pool is closed until then (Unix ms), after a vendor 429 (close.lua);
--                               carried into the next window while it is still in the future
--             pool, t:<path>    credits used by the pool and by each tenant node (with all below it)
--             g:<parent>        Σ min(used, Guaranteed) over the parent's children
--             d:<parent>:<q>    Σ (min(used, Allocation) − min(used, Guaranteed)) over its children of
--                               priority q (kept only for levels that a lower-priority sibling reads)
-- KEYS[2p]  pool p's state hash, which outlives windows: r:<node> = the node's GCRA theoretical
--           arrival time (Unix µs). Touched only when the path has a rate.
-- KEYS[2P+p] when the ledger is on (ARGV_ROUTE not empty): pool p's stream of usage events, one entry
--           per admitted debit and per overage, written in this same atomic step so that no crash can
--           separate a debit from its event. One field, e, packed so that a flusher parses one value, not
--           seven (see UsageEventFormat.cs):
--             '<time ms> <credits> <kind> <shadow 1|0> <#tenant> <#route> <tenant><route><request id>'
--           where #x is x's length in bytes, so the names need no escaping.
-- KEYS[..]  then: one sorted set per node with a MaxInFlight, its leases (member
--           the lease id, score the lease's expiry in Unix ms). Expired leases are dropped as they are read.
-- KEYS[#KEYS] last, the hash tag's baseline marker (baseline.lua): without it this Redis has lost its data
--           (or never had any), and the script admits nothing: it answers the error QP_NO_BASELINE, and the
--           proxy restores the window's counters from the ledger before deciding again.
-- Numbers come packed: little-endian doubles read by one struct.unpack, not a decimal string each (a
-- tonumber apiece, and there are dozens). Every one is an integer below 2^53.
-- ARGV_NUMBERS  packed: now in Unix µs (or 0 to read the server clock), cost (credits, > 0, charged to every
--           pool), P (the number of pools), the lease's lifetime in ms (used when a node has MaxInFlight),
--           and with the ledger on, the most events a pool's stream may hold: a full stream (PostgreSQL has
--           been away too long) rejects with limited_by 7, whatever the mode: no admission goes unbilled
--           ; then the deadline in this server's Unix µs (0: none): a call that runs later debits nothing
--           and replies limited_by EXPIRED for every pool; and, only when present (a seventh number),
--           peek: 1 decides exactly as below and writes no debit, lease or event (POST /quota/v1/decide: the
--           same code decides a question and a request, so they cannot disagree). The reply is the one a
--           debit would get, used and remaining as if debited. Only housekeeping any decision does is
--           done: a new window's counters cleared, expired leases dropped.
-- ARGV_LEASE_ID this request's lease id
-- ARGV_ROUTE    the route, or empty when the ledger is off; ARGV_TENANT the tenant's path; ARGV_REQUEST_ID the request id
-- ARGV_IDEMPOTENCY on a route whose vendor honours idempotency keys, '<field> <fingerprint> <max replays>'
--           (the field i:<tenant>:<Idempotency-Key>), else empty. The field's value in a pool's window is
--           fingerprint × REPLAY_COUNT_RANGE + replays so far (IdempotencyClaim.cs). A retry of the same
--           request while replays are left is a replay: checked like any request but for credits, charged
--           none, a 'replay' event of 0 credits; past them it is charged like any request. A different
--           request under the key is refused (IDEMPOTENCY_CONFLICT). A first request binds the key.
-- then one block per pool, in the route's order (offsets from the block's first ARGV):
--   BLOCK_WINDOW   packed: the fixed window length in ms (1s, 1m, 1h) or 0 for a calendar window (1d, 1mo); for
--           fixed windows the zone's UTC offset in ms, modulo the length; for calendar windows, as the
--           proxy's clock sees them, the previous start, start, end and next end. Nothing else, so the proxy
--           packs it once per pool and window, not per request.
--   BLOCK_FORMAT   the struct.unpack format of the records ('<' and a 'd' per number)
--   BLOCK_RECORDS  packed, the path's numbers (rec below; DebitLayout.cs names each offset): PATH_FIELD_COUNT r, the number of usage hash fields the decision reads;
--           depth, the number of tenant nodes on the path (the pool is not counted); then one record per
--           node, the pool first, then down to the caller:
--             pool:   used field i, limit, overage, soft limit (-1: none), shadow (1|0)
--             tenant: the same five, then guaranteed, allocation, i of the parent's g: field (0 when no
--                     sibling guarantees anything), i of this node's d: field (0 when nothing reads
--                     it), Σ Guaranteed of the parent's children, k, and k pairs (i of a d: field,
--                     Σ (Allocation − Guaranteed) at that level) for the sibling levels of higher
--                     priority that have credits above their guarantees
--           then q, the number of nodes on the path with a rate, and q records (node index, emission
--           interval µs, capacity µs = Burst × interval, shadow 1|0), pool first; then l, the number of
--           nodes on the path with a MaxInFlight, and l records (node index, j: its lease set is the
--           pool's j-th in KEYS, MaxInFlight, shadow 1|0), pool first
--   then      the r usage fields, which records name by their position i (1-based, 0 for none); then the q
--           rates' r: fields of the state hash, in the order of their records
--           The proxy builds the format, the records and the fields once per node (PathArguments.cs), so the script builds no
--           field names and parses no decimal arguments: a decision costs Redis a few microseconds.
--
-- Reply: one string of little-endian doubles, read with BinaryPrimitives (one bulk reply is cheaper for both
-- sides than an array of integers: no reply object per value in the client), holding
--        { REPLY_ADMITTED (1|0: every pool admits), REPLY_LIMITING_POOL the index of the first pool that rejects (0-based, -1 none),
--          then POOL_REPLY_LENGTH values per pool (REPLY_*): admitted by this pool (1|0), limited_by (0 none, 1 tenant, 2 pool,
--          3 reserved, 4 rate, 5 vendor, 6 concurrency, 7 ledger backlog full), limiting node index (0 the pool, i the i-th tenant from the
--          top, -1 none), caller's used, remaining, window_start_ms, window_end_ms, now_ms, overage
--          credits, soft-limit node index (-1 none), soft limit crossed now (1|0), shadow (1|0: admitted
--          only because every failing node is in shadow mode), pool's used, µs until a retry can
--          succeed when limited by a rate or a closure (else 0), replayed (1|0: a retry, charged nothing) }
--          Used and remaining are after the decision: debited when every pool admits, untouched when
--          one rejects. Remaining after a debit is the smallest room before it minus the cost: every term
--          of a node's room falls by exactly the cost (see TreeAdmission.cs).
-- Error: 'QP_CLOCK_SKEW' when the server clock is outside the three calendar windows offered;
--        'QP_NO_BASELINE' when the tag has no baseline marker.
--
-- A batch (group commit, DebitBatches.cs): while one call is in flight to a hash tag, the decisions that
-- arrive meanwhile go together in the next call, each decided in turn exactly as alone. Then ARGV[1] is
-- empty (a single decision's ARGV[1] never is), ARGV[2] the number of decisions D, then D pairs (the
-- decision's key count, its argument count), then each decision's arguments; KEYS are each decision's keys
-- in turn. A decision whose keys or arguments are an earlier decision's (the same array in the proxy) has
-- -n for that count, the n-th set sent, and sends none of them again. Reply: one element per decision, its
-- reply as above, or its error. The errors come before any write and are the same for every decision of a
-- tag (its clock, its baseline), so none leaves a batch half written. A batch reads a usage hash once and
-- writes what its decisions changed once, at the end of the call (hashes and flush, below), and reads a
-- ledger stream's length once: Redis's work per decision is the script's arithmetic, not a command's.

-- Read once per call, a batch's decisions sharing them: the server's clock (one call is one atomic
-- instant) and the baseline marker found (one hash tag per call).
local call_now_us, baseline_found
-- The usage hashes as this call has read and changed them. A batch's decisions on one pool read each
-- field from Redis once (later decisions see the earlier ones' debits here), and the fields they change
-- are written once, by one HSET per hash when the call ends (flush, below): the same hash as a write per
-- decision leaves, for a fraction of the calls and number conversions. values[field] is a number, or
-- false for a field known to be absent; complete: the hash was just cleared, so a field not in values is
-- absent. dirty[field]: changed, to be written.
local hashes = {}
-- Each ledger stream's length as this call knows it: one XLEN, then one more per event it appends.
local backlogs = {}
-- A path's packed records, unpacked once per call (a batch's decisions for one tenant share them; read only),
-- and the reply's struct.pack format by its length.
local unpacked_records, reply_formats = {}, {}

-- Below, one decision: a function of its own KEYS and ARGV (the names shadow Redis's), left unindented.
local function decide(KEYS, ARGV)
-- The layout of ARGV, the packed records and the reply, named as in DebitLayout.cs (DebitLayoutTests holds
-- the two to the same values). Offsets are 0-based from the start of their record.
local ARGV_NUMBERS, ARGV_LEASE_ID, ARGV_ROUTE, ARGV_TENANT, ARGV_REQUEST_ID, ARGV_IDEMPOTENCY, ARGV_HEADER_LENGTH = 0, 1, 2, 3, 4, 5, 6
local BLOCK_WINDOW, BLOCK_FORMAT, BLOCK_RECORDS, BLOCK_HEADER_LENGTH = 0, 1, 2, 3
local PATH_FIELD_COUNT, PATH_DEPTH, PATH_HEAD_LENGTH = 0, 1, 2
local NODE_USED_FIELD, NODE_LIMIT, NODE_OVERAGE, NODE_SOFT_LIMIT, NODE_SHADOW, POOL_RECORD_LENGTH = 0, 1, 2, 3, 4, 5
local TENANT_GUARANTEED, TENANT_ALLOCATION, TENANT_GUARANTEE_FIELD, TENANT_LEVEL_FIELD = 5, 6, 7, 8
local TENANT_SIBLING_GUARANTEES, TENANT_LEVEL_COUNT, TENANT_RECORD_LENGTH = 9, 10, 11
local LEVEL_FIELD, LEVEL_ALLOCATION_ABOVE_GUARANTEED, LEVEL_LENGTH = 0, 1, 2
local RATE_NODE, RATE_INTERVAL, RATE_CAPACITY, RATE_SHADOW, RATE_RECORD_LENGTH = 0, 1, 2, 3, 4
local LEASE_NODE, LEASE_SET, LEASE_MAX, LEASE_SHADOW, LEASE_RECORD_LENGTH = 0, 1, 2, 3, 4
local REPLY_ADMITTED, REPLY_LIMITING_POOL, REPLY_HEAD_LENGTH = 0, 1, 2
local REPLY_POOL_ADMITTED, REPLY_LIMITED_BY, REPLY_LIMITING_NODE, REPLY_USED, REPLY_REMAINING = 0, 1, 2, 3, 4
local REPLY_WINDOW_START, REPLY_WINDOW_END, REPLY_NOW, REPLY_OVERAGE, REPLY_SOFT_LIMIT_NODE = 5, 6, 7, 8, 9
local REPLY_SOFT_LIMIT_CROSSED, REPLY_SHADOW, REPLY_POOL_USED, REPLY_RETRY_AFTER_MICROS, REPLY_REPLAYED = 10, 11, 12, 13, 14
local POOL_REPLY_LENGTH = 15
local KEEP_AFTER_WINDOW_MS = 60000
-- What limited a decision (QuotaLimitedBy).
local NONE, TENANT, POOL, RESERVED, RATE, VENDOR, CONCURRENCY, LEDGER_BACKLOG, EXPIRED = 0, 1, 2, 3, 4, 5, 6, 7, 8
local IDEMPOTENCY_CONFLICT = 9
local REPLAY_COUNT_RANGE = 1024

local now, cost, pool_count, lease_ms, max_backlog, deadline = struct.unpack('<dddddd', ARGV[1 + ARGV_NUMBERS])
local peek = #ARGV[1 + ARGV_NUMBERS] >= 56 and select(7, struct.unpack('<ddddddd', ARGV[1 + ARGV_NUMBERS])) == 1
local lease_id, route, tenant = ARGV[1 + ARGV_LEASE_ID], ARGV[1 + ARGV_ROUTE], ARGV[1 + ARGV_TENANT]
local request_id, idempotency, fingerprint, max_replays = ARGV[1 + ARGV_REQUEST_ID], '', 0, 0
do
  local field, bound_to, replays = string.match(ARGV[1 + ARGV_IDEMPOTENCY], '^(%S+) (%d+) (%d+)$')
  if field then idempotency, fingerprint, max_replays = field, tonumber(bound_to), tonumber(replays) end
end

local min, max, tonumber = math.min, math.max, tonumber

if now == 0 then
  if not call_now_us then
    local time = redis.call('TIME')
    call_now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
  end
  now = call_now_us
end
local now_us = now
now = math.floor(now_us / 1000)

-- The proxy stops waiting at its store timeout and answers 503: a decision that reaches Redis after that
-- (behind a pause, a stall, a slow network) must change nothing. The deadline is on this server's clock.
if deadline > 0 and now_us > deadline then
  local expired = { 0, -1 }
  for p = 1, pool_count do
    local at = 1 + REPLY_HEAD_LENGTH + (p - 1) * POOL_REPLY_LENGTH
    for i = 0, POOL_REPLY_LENGTH - 1 do expired[at + i] = 0 end
    expired[at + REPLY_LIMITED_BY], expired[at + REPLY_NOW] = EXPIRED, now
    expired[at + REPLY_LIMITING_NODE], expired[at + REPLY_SOFT_LIMIT_NODE] = -1, -1
  end
  expired[1 + REPLY_LIMITING_POOL] = 0
  return struct.pack('<' .. string.rep('d', #expired), unpack(expired))
end

-- Counters on a Redis that lost its data would start the window again from zero.
if baseline_found ~= KEYS[#KEYS] then
  if redis.call('EXISTS', KEYS[#KEYS]) == 0 then
    return redis.error_reply('QP_NO_BASELINE no baseline for ' .. KEYS[#KEYS])
  end
  baseline_found = KEYS[#KEYS]
end

-- Each pool's decision, without writing the debit: its result and the writes an admission makes; then
-- the next pool's block. Opening a new window is done here: it does not depend on the outcome. A loop body,
-- not a function: Redis would create a closure over this many locals on every call.
local results = {}
local block = ARGV_HEADER_LENGTH + 1
-- The pools' lease sets follow their usage and state hashes and, with the ledger on, their streams, in
-- the route's order: this pool's j-th is KEYS[lease_base + j].
local lease_base = (route ~= '' and 3 or 2) * pool_count
local limiting_pool = -1
for p = 1, pool_count do
  local usage_key, state_key = KEYS[2 * p - 1], KEYS[2 * p]
  local fixed_length, offset, previous_start, start, finish, next_end = struct.unpack('<dddddd', ARGV[block + BLOCK_WINDOW])
  local rec = unpacked_records[ARGV[block + BLOCK_RECORDS]]
  if not rec then
    rec = { struct.unpack(ARGV[block + BLOCK_FORMAT], ARGV[block + BLOCK_RECORDS]) }
    unpacked_records[ARGV[block + BLOCK_RECORDS]] = rec
  end
  local read_count, depth = rec[1 + PATH_FIELD_COUNT], rec[1 + PATH_DEPTH]
  local FIRST_FIELD = block + BLOCK_HEADER_LENGTH
  local FIRST_RATE_FIELD = FIRST_FIELD + read_count
  local FIRST_RECORD = 1 + PATH_HEAD_LENGTH

  local window_start, window_end
  if fixed_length > 0 then
    window_start = now - ((now + offset) % fixed_length)
    window_end = window_start + fixed_length
  else
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

  -- The fields the decision reads: from this call's copy of the hash, one HMGET for those it lacks.
  local hash = hashes[usage_key]
  if not hash then
    hash = { values = {}, dirty = {}, complete = false }
    hashes[usage_key] = hash
  end
  local values = hash.values
  if not hash.complete then
    -- Made only when a field is missing: after a batch's first decision on a path, none is.
    local missing, m = nil, 0
    if values['start'] == nil then missing, m = { 'start', 'end', 'closed' }, 3 end
    if idempotency ~= '' and values[idempotency] == nil then missing = missing or {}; m = m + 1; missing[m] = idempotency end
    for i = FIRST_FIELD, FIRST_FIELD + read_count - 1 do
      if values[ARGV[i]] == nil then missing = missing or {}; m = m + 1; missing[m] = ARGV[i] end
    end
    if m > 0 then
      local stored = redis.call('HMGET', usage_key, unpack(missing, 1, m))
      for i = 1, m do values[missing[i]] = tonumber(stored[i]) or false end
    end
  end
  local seen = idempotency ~= '' and values[idempotency] or nil
  local value = {}
  local stored_start = values['start'] or nil
  local closed = values['closed'] or 0
  -- A new window starts from zero: no reset job, the first decision in it clears the counters.
  if stored_start == nil or window_start > stored_start then
    seen = nil
    redis.call('DEL', usage_key)
    if closed > now then
      redis.call('HSET', usage_key, 'start', window_start, 'end', window_end, 'closed', closed)
    else
      redis.call('HSET', usage_key, 'start', window_start, 'end', window_end)
    end
    -- Memory cleanup only (the start check above is what resets): kept a minute past the window's end
    -- or the closure's, whichever is later.
    redis.call('PEXPIRE', usage_key, max(window_end, closed) - now + KEEP_AFTER_WINDOW_MS)
    -- Changes of this call's earlier decisions to the old window are gone with it, as the DEL made them.
    hash = { values = { start = window_start, ['end'] = window_end, closed = closed > now and closed or false }, dirty = {}, complete = true }
    hashes[usage_key] = hash
    for i = 1, read_count do value[i] = 0 end
  else
    window_start, window_end = stored_start, values['end']
    for i = 1, read_count do value[i] = values[ARGV[FIRST_FIELD - 1 + i]] or 0 end
  end

  -- A key already bound in this window: a retry of its request (a replay while replays are left), or a
  -- different request under the same key.
  local replayed, conflict = false, false
  if seen then
    if math.floor(seen / REPLAY_COUNT_RANGE) ~= fingerprint then
      conflict = true
    elseif seen % REPLAY_COUNT_RANGE < max_replays then
      replayed = true
    end
  end

  -- One pass, pool first: every node's room, the first failing check (an enforcing node rejects, a shadow
  -- node only reports), the smallest room on the path, and the writes an admission would make.
  local limited_by, limiting, shadow_limited_by, shadow_limiting = NONE, -1, NONE, -1
  local smallest
  local parent_limit, parent_used, caller_used, pool_used
  local writes, w = {}, 0
  local overage, soft_index, soft_crossed = 0, -1, 0
  local wait_us = 0
  if closed > now then
    if rec[FIRST_RECORD + NODE_SHADOW] ~= 1 then
      limited_by, limiting, wait_us = VENDOR, 0, closed * 1000 - now_us
    else
      shadow_limited_by, shadow_limiting = VENDOR, 0
    end
  end
  local at = FIRST_RECORD
  for index = 0, depth do
    local used_index = rec[at + NODE_USED_FIELD]
    local used = value[used_index]
    local after = used + cost
    local limit = rec[at + NODE_LIMIT]
    local room = limit + rec[at + NODE_OVERAGE] - used
    local found = NONE
    if not replayed and cost > room then
      if index == 0 then found = POOL else found = TENANT end
    end
    local shadow = rec[at + NODE_SHADOW] == 1
    local soft = rec[at + NODE_SOFT_LIMIT]
    if not replayed and soft_index == -1 and soft >= 0 and after > soft then
      soft_index = index
      if used <= soft then soft_crossed = 1 end
    end
    writes[w + 1], writes[w + 2] = ARGV[FIRST_FIELD - 1 + used_index], after
    w = w + 2
    if index == 0 then
      pool_used = used
      at = at + POOL_RECORD_LENGTH
    else
      -- max(Guaranteed(n) − u(n), R − Σ claims of n's siblings), from the parent's running aggregates.
      local guaranteed = rec[at + TENANT_GUARANTEED]
      local claims = min(used, guaranteed) - guaranteed
      local guarantee_index = rec[at + TENANT_GUARANTEE_FIELD]
      if guarantee_index > 0 then
        local guarantees_used = value[guarantee_index]
        claims = claims + rec[at + TENANT_SIBLING_GUARANTEES] - guarantees_used
        local delta = min(after, guaranteed) - min(used, guaranteed)
        if delta ~= 0 then
          writes[w + 1], writes[w + 2] = ARGV[FIRST_FIELD - 1 + guarantee_index], guarantees_used + delta
          w = w + 2
        end
      end
      local level_index = rec[at + TENANT_LEVEL_FIELD]
      if level_index > 0 then
        local allocation = rec[at + TENANT_ALLOCATION]
        local delta = (min(after, allocation) - min(after, guaranteed)) - (min(used, allocation) - min(used, guaranteed))
        if delta ~= 0 then
          writes[w + 1], writes[w + 2] = ARGV[FIRST_FIELD - 1 + level_index], value[level_index] + delta
          w = w + 2
        end
      end
      local level_count = rec[at + TENANT_LEVEL_COUNT]
      at = at + TENANT_RECORD_LENGTH
      for _ = 1, level_count do
        claims = claims + rec[at + LEVEL_ALLOCATION_ABOVE_GUARANTEED] - value[rec[at + LEVEL_FIELD]]
        at = at + LEVEL_LENGTH
      end
      local share = max(guaranteed - used, parent_limit - parent_used - claims)
      if share < room then room = share end
      if not replayed and found == NONE and cost > share then found = RESERVED end
      if not replayed and after > limit then overage = max(overage, min(after - limit, cost)) end
    end
    if smallest == nil or room < smallest then smallest = room end
    if found ~= NONE and limited_by == NONE then
      if not shadow then
        limited_by, limiting = found, index
      elseif shadow_limited_by == NONE then
        shadow_limited_by, shadow_limiting = found, index
      end
    end
    parent_limit, parent_used, caller_used = limit, used, used
  end

  -- Rates, by GCRA: admitted iff max(TAT, now) + cost × interval − now ≤ capacity.
  local rate_count = rec[at]
  local rate_writes
  local first_rate = at + 1
  at = first_rate + rate_count * RATE_RECORD_LENGTH
  if rate_count > 0 then
    local tats = redis.call('HMGET', state_key, unpack(ARGV, FIRST_RATE_FIELD, FIRST_RATE_FIELD + rate_count - 1))
    rate_writes = {}
    for r = 1, rate_count do
      local record = first_rate + (r - 1) * RATE_RECORD_LENGTH
      local interval, capacity = rec[record + RATE_INTERVAL], rec[record + RATE_CAPACITY]
      local tat = max(tonumber(tats[r]) or 0, now_us) + cost * interval
      if tat - now_us > capacity and limited_by == NONE then
        if rec[record + RATE_SHADOW] ~= 1 then
          limited_by, limiting, wait_us = RATE, rec[record + RATE_NODE], tat - capacity - now_us
        elseif shadow_limited_by == NONE then
          shadow_limited_by, shadow_limiting = RATE, rec[record + RATE_NODE]
        end
      end
      -- '%d': a Lua number passed as is would be written with 14 significant digits, and µs need 16.
      rate_writes[2 * r - 1], rate_writes[2 * r] = ARGV[FIRST_RATE_FIELD + r - 1], string.format('%d', tat)
    end
  end

  -- Requests in flight: a lease per request in each such node's set, released when the response ends.
  local lease_count = rec[at]
  local first_lease = at + 1
  at = first_lease + lease_count * LEASE_RECORD_LENGTH
  local lease_keys
  if lease_count > 0 then
    lease_keys = {}
    for l = 1, lease_count do
      local record = first_lease + (l - 1) * LEASE_RECORD_LENGTH
      local key = KEYS[lease_base + rec[record + LEASE_SET]]
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
      if redis.call('ZCARD', key) + 1 > rec[record + LEASE_MAX] and limited_by == NONE then
        if rec[record + LEASE_SHADOW] ~= 1 then
          limited_by, limiting = CONCURRENCY, rec[record + LEASE_NODE]
        elseif shadow_limited_by == NONE then
          shadow_limited_by, shadow_limiting = CONCURRENCY, rec[record + LEASE_NODE]
        end
      end
      lease_keys[l] = key
    end
    lease_base = lease_base + lease_count
  end

  if route ~= '' then
    local stream = KEYS[2 * pool_count + p]
    local length = backlogs[stream]
    if not length then
      length = redis.call('XLEN', stream)
      backlogs[stream] = length
    end
    if length >= max_backlog then
      limited_by, limiting, wait_us = LEDGER_BACKLOG, 0, 0
    end
  end

  if conflict then
    limited_by, limiting, shadow_limited_by, shadow_limiting, wait_us = IDEMPOTENCY_CONFLICT, -1, NONE, -1, 0
  elseif idempotency ~= '' and not replayed then
    -- A first request binds the key to its fingerprint; past its replays the count stays where it is.
    writes[w + 1], writes[w + 2] = idempotency, seen or fingerprint * REPLAY_COUNT_RANGE
  end

  local result = {
    replayed = replayed,
    limited_by = limited_by, limiting = limiting, shadow_limited_by = shadow_limited_by, shadow_limiting = shadow_limiting,
    caller_used = caller_used, pool_used = pool_used, smallest = smallest, window_start = window_start,
    window_end = window_end, overage = overage, soft_index = soft_index, soft_crossed = soft_crossed,
    wait_us = wait_us, usage_key = usage_key, writes = writes, state_key = state_key, rate_writes = rate_writes,
    lease_keys = lease_keys,
  }
  results[p] = result
  if limited_by ~= NONE and limiting_pool == -1 then limiting_pool = p - 1 end
  block = FIRST_RATE_FIELD + rate_count
end

local admitted = limiting_pool == -1
if admitted and not peek then
  local event_tail = route ~= '' and (string.format(' %d %d ', #tenant, #route) .. tenant .. route .. request_id)
  for p = 1, pool_count do
    -- A replayed pool was charged when the request first came: no credits, one more replay of its key.
    local result = results[p]
    local hash = hashes[result.usage_key]
    if result.replayed then
      hash.values[idempotency], hash.dirty[idempotency] = hash.values[idempotency] + 1, true
    else
      local writes, values, dirty = result.writes, hash.values, hash.dirty
      for i = 1, #writes, 2 do values[writes[i]], dirty[writes[i]] = writes[i + 1], true end
    end
    if result.rate_writes then redis.call('HSET', result.state_key, unpack(result.rate_writes)) end
    if result.lease_keys then
      for _, key in ipairs(result.lease_keys) do
        redis.call('ZADD', key, now + lease_ms, lease_id)
        -- Memory cleanup only: a set nobody writes to any more goes a minute after its last lease expires.
        redis.call('PEXPIRE', key, lease_ms + KEEP_AFTER_WINDOW_MS)
      end
    end
    if route ~= '' then
      local stream, shadow = KEYS[2 * pool_count + p], result.shadow_limited_by ~= NONE and ' 1' or ' 0'
      if result.replayed then
        redis.call('XADD', stream, '*', 'e', string.format('%d 0 replay', now) .. shadow .. event_tail)
        backlogs[stream] = backlogs[stream] + 1
      else
        if cost > result.overage then
          redis.call('XADD', stream, '*', 'e', string.format('%d %d debit', now, cost - result.overage) .. shadow .. event_tail)
          backlogs[stream] = backlogs[stream] + 1
        end
        if result.overage > 0 then
          redis.call('XADD', stream, '*', 'e', string.format('%d %d overage', now, result.overage) .. shadow .. event_tail)
          backlogs[stream] = backlogs[stream] + 1
        end
      end
    end
  end
end

-- The route's verdict, then a record per pool; sized for one pool (the common case) by its constructor.
local reply = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }
reply[1 + REPLY_ADMITTED], reply[1 + REPLY_LIMITING_POOL] = admitted and 1 or 0, limiting_pool
for p = 1, pool_count do
  local r, at = results[p], 1 + REPLY_HEAD_LENGTH + (p - 1) * POOL_REPLY_LENGTH
  reply[at + REPLY_LIMITED_BY] = r.limited_by
  reply[at + REPLY_WINDOW_START], reply[at + REPLY_WINDOW_END], reply[at + REPLY_NOW] = r.window_start, r.window_end, now
  if r.limited_by ~= NONE then
    reply[at + REPLY_POOL_ADMITTED], reply[at + REPLY_LIMITING_NODE] = 0, r.limiting
    reply[at + REPLY_USED], reply[at + REPLY_REMAINING], reply[at + REPLY_POOL_USED] = r.caller_used, max(0, r.smallest), r.pool_used
    reply[at + REPLY_OVERAGE], reply[at + REPLY_SOFT_LIMIT_NODE], reply[at + REPLY_SOFT_LIMIT_CROSSED] = 0, -1, 0
    reply[at + REPLY_SHADOW], reply[at + REPLY_RETRY_AFTER_MICROS], reply[at + REPLY_REPLAYED] = 0, r.wait_us, 0
  else
    local debited, overage, soft_index, soft_crossed = 0, 0, -1, 0
    if admitted and not r.replayed then debited, overage, soft_index, soft_crossed = cost, r.overage, r.soft_index, r.soft_crossed end
    reply[at + REPLY_POOL_ADMITTED], reply[at + REPLY_LIMITED_BY], reply[at + REPLY_LIMITING_NODE] = 1, r.shadow_limited_by, r.shadow_limiting
    reply[at + REPLY_USED], reply[at + REPLY_REMAINING], reply[at + REPLY_POOL_USED] = r.caller_used + debited, max(0, r.smallest - debited), r.pool_used + debited
    reply[at + REPLY_OVERAGE], reply[at + REPLY_SOFT_LIMIT_NODE], reply[at + REPLY_SOFT_LIMIT_CROSSED] = overage, soft_index, soft_crossed
    reply[at + REPLY_SHADOW] = r.shadow_limited_by ~= NONE and 1 or 0
    reply[at + REPLY_RETRY_AFTER_MICROS], reply[at + REPLY_REPLAYED] = 0, r.replayed and 1 or 0
  end
end
local format = reply_formats[#reply]
if not format then
  format = '<' .. string.rep('d', #reply)
  reply_formats[#reply] = format
end
return struct.pack(format, unpack(reply))
end

-- The changed fields of every usage hash, one HSET each; '%d': a Lua number passed as is would be
-- written with 14 significant digits (and through the slow path of C's float formatting).
local function flush()
  for key, hash in pairs(hashes) do
    local fields, n = {}, 0
    for field in pairs(hash.dirty) do
      fields[n + 1], fields[n + 2] = field, string.format('%d', hash.values[field])
      n = n + 2
    end
    if n > 0 then redis.call('HSET', key, unpack(fields, 1, n)) end
  end
end

if ARGV[1] ~= '' then
  local reply = decide(KEYS, ARGV)
  flush()
  return reply
end

-- A decision's key or argument count is negative when its array is one an earlier decision of the batch
-- brought: -n, the n-th array sent (decide only reads its KEYS and ARGV, so decisions share the table).
local count = tonumber(ARGV[2])
local replies, key_sets, arg_sets, key_at, arg_at = {}, {}, {}, 0, 2 + 2 * count
for d = 1, count do
  local key_count, arg_count = tonumber(ARGV[1 + 2 * d]), tonumber(ARGV[2 + 2 * d])
  local keys, args = key_sets[-key_count], arg_sets[-arg_count]
  if key_count >= 0 then
    keys = { unpack(KEYS, key_at + 1, key_at + key_count) }
    key_sets[#key_sets + 1], key_at = keys, key_at + key_count
  end
  if arg_count >= 0 then
    args = { unpack(ARGV, arg_at + 1, arg_at + arg_count) }
    arg_sets[#arg_sets + 1], arg_at = args, arg_at + arg_count
  end
  replies[d] = decide(keys, args)
end
flush()
return replies
