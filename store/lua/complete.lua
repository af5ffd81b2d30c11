-- Records the outcome of a task, only for the current lease holder.
-- KEYS[1..4] tenancy (lib.lua), KEYS[5] task hash, KEYS[6] leases, KEYS[7] stats
-- ARGV[1] task id, ARGV[2] fence, ARGV[3] done channel, ARGV[4] now (unix ms),
-- ARGV[5] result TTL (ms, 0: keep), ARGV[6] status, ARGV[7] error kind ('' if none),
-- ARGV[8..] field/value pairs (status, result, finished_at, ...)
-- Returns 1 if recorded, 0 for a stale or repeated result.
local h = redis.call('HMGET', KEYS[5], 'status', 'fence', 'owner')
if h[1] ~= 'RUNNING' or h[2] ~= ARGV[2] or not redis.call('ZSCORE', KEYS[6], ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[5], unpack(ARGV, 8))
redis.call('ZREM', KEYS[6], ARGV[1])
faas_lease_dropped(h[3])
faas_final(KEYS[7], KEYS[5], 'RUNNING', ARGV[6], ARGV[7], ARGV[4], ARGV[5], ARGV[3])
return 1
