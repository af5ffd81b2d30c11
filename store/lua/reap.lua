-- Handles leases that expired at or before ARGV[1].
-- KEYS[1..4] tenancy (lib.lua), KEYS[5] leases, KEYS[6] stats, KEYS[7] the hooks set
-- (lib.lua, faas_finish)
-- ARGV[1] now (unix ms), ARGV[2] max attempts, ARGV[3] batch size,
-- ARGV[4] done channel, ARGV[5] result for a failed task (pickled exception),
-- ARGV[6] error JSON for a failed task, ARGV[7] result TTL (ms, 0: keep),
-- ARGV[8] '1' if tenants can be parked
-- A task with attempts left goes back to the consumer end of its tenant's
-- queue and stays RUNNING; one without becomes FAILED (WORKER_LOST) and is
-- announced on the done channel. Leases of tasks that are gone or already
-- final are dropped. Every parked tenant goes back into the ring first (a
-- safety net: claim parks it again if it is still at its cap), so a tenant
-- never stays parked after a cap was raised; so does the default tenant if
-- its queue holds ids but it is out of the ring (ids pushed by a version of
-- these scripts before the ring).
-- Returns {requeued ids, failed ids, number of expired leases handled}.
for _, tenant in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  faas_unpark(tenant)
end
if redis.call('LLEN', KEYS[1]) > 0 then
  faas_ring_join('')
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local lost = {max = tonumber(ARGV[2]), now = ARGV[1], result = ARGV[5], err = ARGV[6], ttl = ARGV[7], done = ARGV[4],
  capped = ARGV[8] == '1', stats = KEYS[6], hooks = KEYS[7]}
local requeued, failed = {}, {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[5], id)
  local h = faas_read(id)
  if h.status == 'RUNNING' then
    if faas_requeue_or_lose(id, h, lost) then
      requeued[#requeued + 1] = id
    else
      failed[#failed + 1] = id
    end
  elseif h.status then
    faas_lease_dropped(h.owner, lost.capped)
  end
end
return {requeued, failed, #ids}
