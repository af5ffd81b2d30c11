-- Gives a claimed task back without counting the attempt.
-- KEYS[1..4] tenancy (lib.lua), KEYS[5] task hash, KEYS[6] leases,
-- KEYS[7] the queue of owner ARGV[4]
-- ARGV[1] task id, ARGV[2] fence, ARGV[3] '1' if tenants can be parked,
-- ARGV[4] the task's owner as the lease holder knows it
-- The id goes to the consumer end of its tenant's queue (the tenant's next
-- task). The status stays RUNNING (statuses never move backwards); the
-- fence is not reused, so a result from the releasing claim stays stale
-- forever.
-- Returns 1 if released, 0 if the caller did not hold the task.
local h = redis.call('HMGET', KEYS[5], 'status', 'fence', 'owner', 'attempts')
if h[1] ~= 'RUNNING' or h[2] ~= ARGV[2] or (h[3] or '') ~= ARGV[4] or redis.call('ZREM', KEYS[6], ARGV[1]) == 0 then
  return 0
end
local q = KEYS[7]
faas_lease_dropped(h[3], ARGV[3] == '1', q)
redis.call('HSET', KEYS[5], 'attempts', math.max((tonumber(h[4]) or 0) - 1, 0))
faas_queue_next(q, h[3], ARGV[1])
return 1
