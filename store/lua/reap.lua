-- Handles leases that expired at or before ARGV[1].
-- KEYS[1..4] tenancy (lib.lua), KEYS[5] leases, KEYS[6] stats, KEYS[7] the hooks set
-- (lib.lua, faas_finish), KEYS[8..7+p] the queues of the parked tenants
-- ARGV[9..8+p], then for each expired lease the caller found, its task hash
-- and its owner's queue
-- ARGV[1] now (unix ms), ARGV[2] max attempts, ARGV[3] p, the number of
-- parked tenants the caller found, ARGV[4] done channel, ARGV[5] result for a failed task (pickled exception),
-- ARGV[6] error JSON for a failed task, ARGV[7] result TTL (ms, 0: keep),
-- ARGV[8] '1' if tenants can be parked, ARGV[9..8+p] the parked tenants,
-- then for each expired lease its task id and its owner as the caller read
-- them
-- A task with attempts left goes back to the consumer end of its tenant's
-- queue and stays RUNNING; one without becomes FAILED (WORKER_LOST) and is
-- announced on the done channel. Leases of tasks that are gone or already
-- final are dropped. A lease no longer expired (renewed since the caller
-- looked, or handled by another reaper) is left alone, and so is one whose
-- task's owner is not the one read. Every parked tenant goes back into the
-- ring first (a safety net: claim parks it again if it is still at its
-- cap), so a tenant never stays parked after a cap was raised; so does the
-- default tenant if its queue holds ids but it is out of the ring (ids
-- pushed by a version of these scripts before the ring).
-- Returns {requeued ids, failed ids, number of expired leases handled}.
local now = tonumber(ARGV[1])
local p = tonumber(ARGV[3])
for j = 1, p do
  faas_unpark(ARGV[8 + j], KEYS[7 + j])
end
if redis.call('LLEN', KEYS[1]) > 0 then
  faas_ring_join('')
end
local lost = {max = tonumber(ARGV[2]), now = ARGV[1], result = ARGV[5], err = ARGV[6], ttl = ARGV[7], done = ARGV[4],
  capped = ARGV[8] == '1', stats = KEYS[6], hooks = KEYS[7]}
local requeued, failed, handled = {}, {}, 0
for i = 9 + p, #ARGV, 2 do
  local id, owner = ARGV[i], ARGV[i + 1]
  local task, q = KEYS[i - 1], KEYS[i]
  local expiry = redis.call('ZSCORE', KEYS[5], id)
  if expiry and tonumber(expiry) <= now then
    local h = faas_read(task)
    if not h.status or (h.owner or '') == owner then
      redis.call('ZREM', KEYS[5], id)
      handled = handled + 1
      if h.status == 'RUNNING' then
        if faas_requeue_or_lose(task, id, h, lost, q) then
          requeued[#requeued + 1] = id
        else
          failed[#failed + 1] = id
        end
      elseif h.status then
        faas_lease_dropped(h.owner, lost.capped, q)
      end
    end
  end
end
return {requeued, failed, handled}
