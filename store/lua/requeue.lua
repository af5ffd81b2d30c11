-- Takes tasks away from a worker that is known to be gone (dead, silent or
-- past its deadline) without waiting for their leases to expire: the same
-- transition as an expired lease in reap.lua, for the given claims only.
-- KEYS[1..4] tenancy (lib.lua), KEYS[5] leases, KEYS[6] stats, KEYS[7] the hooks set
-- (lib.lua, faas_finish), KEYS[8..] for each claim its task hash and its
-- owner's queue
-- ARGV[1] now (unix ms), ARGV[2] max attempts, ARGV[3] done channel,
-- ARGV[4] result for a failed task (pickled exception), ARGV[5] error JSON,
-- ARGV[6] result TTL (ms, 0: keep), ARGV[7] '1' if tenants can be parked,
-- ARGV[8..] triples of task id, fence, owner
-- A claim is handled only if the task is RUNNING, its fence and owner are
-- the given ones and its lease is present; anything else (completed, reaped, claimed again
-- since) is left alone. A handled task with attempts left goes back to the
-- consumer end of its tenant's queue (it stays RUNNING; the attempt stays
-- counted); one without becomes FAILED (WORKER_LOST) and is announced on
-- the done channel.
-- Returns {requeued ids, failed ids}.
local lost = {max = tonumber(ARGV[2]), now = ARGV[1], result = ARGV[4], err = ARGV[5], ttl = ARGV[6], done = ARGV[3],
  capped = ARGV[7] == '1', stats = KEYS[6], hooks = KEYS[7]}
local requeued, failed = {}, {}
for i = 8, #ARGV, 3 do
  local id, k = ARGV[i], 8 + 2 * (i - 8) / 3
  local h = faas_read(KEYS[k])
  if h.status == 'RUNNING' and h.fence == ARGV[i + 1] and (h.owner or '') == ARGV[i + 2] and
      redis.call('ZREM', KEYS[5], id) == 1 then
    if faas_requeue_or_lose(KEYS[k], id, h, lost, KEYS[k + 1]) then
      requeued[#requeued + 1] = id
    else
      failed[#failed + 1] = id
    end
  end
end
return {requeued, failed}
