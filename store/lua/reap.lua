-- Handles leases that expired at or before ARGV[1].
-- KEYS[1..4] tenancy (lib.lua), KEYS[5] leases, KEYS[6] stats
-- ARGV[1] now (unix ms), ARGV[2] max attempts, ARGV[3] batch size,
-- ARGV[4] done channel, ARGV[5] result for a failed task (pickled exception),
-- ARGV[6] error JSON for a failed task, ARGV[7] result TTL (ms, 0: keep)
-- A task with attempts left goes back to the consumer end of its tenant's
-- queue and stays RUNNING; one without becomes FAILED (WORKER_LOST) and is
-- announced on the done channel. Leases of tasks that are gone or already
-- final are dropped. Every parked tenant goes back into the ring first (a
-- safety net: claim parks it again if it is still at its cap), so a tenant
-- never stays parked after a cap was raised.
-- Returns {requeued ids, failed ids, number of expired leases handled}.
for _, tenant in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  faas_unpark(tenant)
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local max = tonumber(ARGV[2])
local requeued, failed = {}, {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[5], id)
  local h = redis.call('HMGET', id, 'status', 'attempts', 'owner')
  if h[1] then
    faas_lease_dropped(h[3])
  end
  if h[1] == 'RUNNING' then
    if (tonumber(h[2]) or 0) < max then
      faas_queue_next(h[3], id)
      requeued[#requeued + 1] = id
    else
      redis.call('HSET', id, 'status', 'FAILED', 'result', ARGV[5], 'error', ARGV[6], 'finished_at', ARGV[1])
      faas_final(KEYS[6], id, 'RUNNING', 'FAILED', 'WORKER_LOST', ARGV[1], ARGV[7], ARGV[4])
      failed[#failed + 1] = id
    end
  end
end
return {requeued, failed, #ids}
