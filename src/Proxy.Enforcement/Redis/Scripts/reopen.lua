-- reopen.lua: ends a vendor closure (close.lua) before its time, on an operator's word (the admin API's
-- reopen). The closure's time goes with it, so the next window does not carry it on either.
--
-- KEYS[1]   the pool's usage hash (see debit.lua)
-- Reply:    the closure that was in force (Unix ms), 0 if none

local closed = tonumber(redis.call('HGET', KEYS[1], 'closed')) or 0
redis.call('HDEL', KEYS[1], 'closed')
return closed
