-- ack.lua: after a ledger batch has committed, acknowledges its events and deletes them from the stream
-- in one step. As two commands, a flusher killed between them left acknowledged entries that nobody
-- would ever delete: the stream (and the backlog it is measured by) would never drain.
--
-- KEYS[1]   the pool's event stream
-- ARGV[1]   the consumer group; ARGV[2..] the entry ids
-- Reply:    how many entries were deleted

local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
return redis.call('XDEL', KEYS[1], unpack(ids))
