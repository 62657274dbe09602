-- ack.lua: after a ledger batch has committed, acknowledges its events and removes from the stream every
-- event that is done, in one step. As two commands, a flusher killed between them left acknowledged entries
-- that nobody would ever remove: the stream (and the backlog it is measured by) would never drain.
--
-- Done means below both the group's oldest pending entry (delivered, not yet acknowledged, perhaps by a
-- replica that died and whose events are claimed later) and the first entry never delivered. Those are
-- trimmed with XTRIM MINID, which frees whole stream nodes: XDEL of each id cost Redis more per event
-- than the debit's own XADD. An acknowledged event behind an older pending one stays until
-- that one is acknowledged too, so the stream's length (the ledger backlog) can run ahead of the events
-- still to write by up to ClaimIdle's worth of traffic after a replica dies.
--
-- KEYS[1]   the pool's event stream
-- ARGV[1]   the consumer group; ARGV[2..] the entry ids
-- Reply:    how many entries were trimmed

local stream, group = KEYS[1], ARGV[1]
redis.call('XACK', stream, group, unpack(ARGV, 2))

local pending = redis.call('XPENDING', stream, group)
local bound
if pending[1] > 0 then
  bound = pending[2]
else
  local last_delivered
  for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local fields = {}
    for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
    if fields['name'] == group then last_delivered = fields['last-delivered-id'] end
  end
  local ms, seq = string.match(last_delivered, '^(%d+)-(%d+)$')
  bound = ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end
return redis.call('XTRIM', stream, 'MINID', bound)
