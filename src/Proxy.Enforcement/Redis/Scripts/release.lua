-- release.lua: a response has ended (success, vendor error, or the client going away): its lease leaves
-- the in-flight set of every node that holds it. A lease never released expires by its score (debit.lua).
--
-- KEYS      the lease sets of the nodes on the request's paths
-- ARGV[1]   the lease id
-- Reply:    how many sets held it

local released = 0
for _, key in ipairs(KEYS) do
  released = released + redis.call('ZREM', key, ARGV[1])
end
return released
