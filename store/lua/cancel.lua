-- Cancels a task that is not final yet: it becomes FAILED (CANCELLED) with
-- the given result and its id leaves its tenant's queue (a QUEUED task, or a
-- RUNNING one requeued after its worker was lost; LREM is linear in the
-- queue's length, which is fine for an occasional cancel). A RUNNING task
-- loses its lease, so that its holder's result is rejected, and its id is
-- published on the cancel channel so that the holder stops it at once (its
-- next lease renewal would tell it too).
-- KEYS[1..4] tenancy (lib.lua), KEYS[5] task hash, KEYS[6] leases,
-- KEYS[7] stats, KEYS[8..9] the scheduled set and its counts (a delayed
-- task, or one waiting to be retried, leaves it), KEYS[10] the hooks set
-- (lib.lua, faas_finish), KEYS[11] the queue of the owner ARGV[12]
-- ARGV[1] task id, ARGV[2] done channel, ARGV[3] cancel channel,
-- ARGV[4] now (unix ms), ARGV[5] result TTL (ms, 0: keep),
-- ARGV[6] result for a QUEUED task, ARGV[7] error JSON for a QUEUED task,
-- ARGV[8] result for a RUNNING task, ARGV[9] error JSON for a RUNNING task,
-- ARGV[10] '1' to cancel only a task of tenant ARGV[11] ('' the default one),
-- ARGV[12] the owner the caller read (or, with ARGV[10], that tenant)
-- Returns the status the task had ('QUEUED' or 'RUNNING' if it was
-- cancelled, 'COMPLETED' or 'FAILED' if it was already final), false
-- (nil) if there is no such task (of that tenant), or 'STALE' if its owner
-- is not ARGV[12] (nothing is written; the caller reads again).
local h = faas_read(KEYS[5])
local st, owner = h.status, h.owner or ''
if not st or (ARGV[10] == '1' and owner ~= ARGV[11]) then
  return false
end
if owner ~= ARGV[12] then
  return 'STALE'
end
local fields
if st == 'QUEUED' then
  fields = {'status', 'FAILED', 'result', ARGV[6], 'error', ARGV[7], 'finished_at', ARGV[4]}
elseif st == 'RUNNING' then
  fields = {'status', 'FAILED', 'result', ARGV[8], 'error', ARGV[9], 'finished_at', ARGV[4]}
  if redis.call('ZREM', KEYS[6], ARGV[1]) == 1 then
    faas_lease_dropped(owner, true, KEYS[11])
  end
else
  return st
end
faas_unschedule(8, owner, ARGV[1])
local q = KEYS[11]
if redis.call('LREM', q, 0, ARGV[1]) + redis.call('LREM', q, 0, '~' .. ARGV[1]) > 0 and redis.call('LLEN', q) == 0 then
  redis.call('ZREM', KEYS[2], owner)
  redis.call('ZREM', KEYS[3], owner)
end
faas_finish(KEYS[5], ARGV[1], h, fields, ARGV[5], ARGV[2], {stats = KEYS[7], status = 'FAILED', kind = 'CANCELLED', now = ARGV[4],
  hooks = KEYS[10]})
if st == 'RUNNING' then
  redis.call('PUBLISH', ARGV[3], ARGV[1])
end
return st
