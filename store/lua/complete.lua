-- Records the outcome of a task, only for the current lease holder.
-- KEYS[1] task hash, KEYS[2] leases
-- ARGV[1] task id, ARGV[2] fence, ARGV[3] done channel, ARGV[4..] field/value pairs
-- (status COMPLETED or FAILED, result, finished_at, ...)
-- Returns 1 if recorded, 0 for a stale or repeated result.
local h = redis.call('HMGET', KEYS[1], 'status', 'fence')
if h[1] ~= 'RUNNING' or h[2] ~= ARGV[2] or not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
