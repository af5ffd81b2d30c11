-- Gives a claimed task back without counting the attempt.
-- KEYS[1] task hash, KEYS[2] queue, KEYS[3] leases
-- ARGV[1] task id, ARGV[2] fence
-- The status stays RUNNING (statuses never move backwards); the fence is not
-- reused, so a result from the releasing claim stays stale forever.
-- Returns 1 if released, 0 if the caller did not hold the task.
local h = redis.call('HMGET', KEYS[1], 'status', 'fence')
if h[1] ~= 'RUNNING' or h[2] ~= ARGV[2] or not redis.call('ZSCORE', KEYS[3], ARGV[1]) then
  return 0
end
redis.call('ZREM', KEYS[3], ARGV[1])
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', -1)
if attempts < 0 then
  redis.call('HSET', KEYS[1], 'attempts', 0)
end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
