-- lease-record.lua: what the store keeps of one credit lease (see LeasingQuotaStore). The lease's credits
-- were debited by debit.lua as one block, with no usage event; the requests that spend them are recorded
-- here, in batches, as the ledger's events, in the same atomic step as what the lease still holds. A
-- record applies once: one sent again after its reply was lost (same or lower sequence) changes nothing.
--
-- KEYS[1]  the pool's lease records: a hash, lease id → '<expires at ms> <unspent> <sequence> <tenant>',
--          unspent -1 for a lease its replica closed, -2 for one the sweep claimed (lease-sweep.lua)
-- KEYS[2]  the pool's event stream (only written when events are sent)
-- ARGV[1]  the lease id
-- ARGV[2]  the record's sequence
-- ARGV[3]  '<expires at ms> <unspent>'; unspent -1: the lease has ended
-- ARGV[4]  the tenant's path, or empty when the ledger is off (the sweep then records no event)
-- ARGV[5..] usage events, each packed as debit.lua packs its own (UsageEventFormat)
-- Reply:   the events appended, or -1 for a record already applied
local sequence = tonumber(ARGV[2])
local state = ARGV[3]
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if previous then
  local expires, unspent, applied = string.match(previous, '^(%-?%d+) (%-?%d+) (%d+)')
  if tonumber(applied) >= sequence then
    return -1
  end
  if unspent == '-2' then
    -- Claimed by the sweep while this replica could not reach the store: its spends are still billed (they
    -- happened), and the record stays claimed so that nothing counts the lease as lost again.
    state = expires .. ' -2'
  end
end
for i = 5, #ARGV do
  redis.call('XADD', KEYS[2], '*', 'e', ARGV[i])
end
redis.call('HSET', KEYS[1], ARGV[1], state .. ' ' .. sequence .. ' ' .. ARGV[4])
return #ARGV - 4
