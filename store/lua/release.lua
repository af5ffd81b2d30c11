-- Gives a claimed task back without counting the attempt.
-- KEYS[1..4] tenancy (lib.lua), KEYS[5] task hash, KEYS[6] leases
-- ARGV[1] task id, ARGV[2] fence
-- The id goes to the consumer end of its tenant's queue (the tenant's next
-- task). The status stays RUNNING (statuses never move backwards); the
-- fence is not reused, so a result from the releasing claim stays stale
-- forever.
-- Returns 1 if released, 0 if the caller did not hold the task.
local h = redis.call('HMGET', KEYS[5], 'status', 'fence', 'owner')
if h[1] ~= 'RUNNING' or h[2] ~= ARGV[2] or not redis.call('ZSCORE', KEYS[6], ARGV[1]) then
  return 0
end
redis.call('ZREM', KEYS[6], ARGV[1])
faas_lease_dropped(h[3])
local attempts = redis.call('HINCRBY', KEYS[5], 'attempts', -1)
if attempts < 0 then
  redis.call('HSET', KEYS[5], 'attempts', 0)
end
faas_queue_next(h[3], ARGV[1])
return 1
