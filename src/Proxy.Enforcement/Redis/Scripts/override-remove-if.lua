-- override-remove-if.lua: removes one runtime override only if it is still the one expected (a grant that
-- has expired), so that of the replicas that see it expire, one removes it and records its end.
-- KEYS[1] the overrides hash; ARGV[1] the pool/tenant field; ARGV[2] its JSON as the caller expects it.
-- Reply: 1 removed, 0 already gone or replaced.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
