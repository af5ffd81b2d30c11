-- Makes the scheduled tasks that are due runnable: a delayed task (QUEUED)
-- joins the producer end of its tenant's queue like a new task, a task
-- waiting for its retry (RUNNING) the consumer end (it is its tenant's
-- next, as a requeued task is). Each promoted id is published on the
-- new-task channel. Entries of tasks that are gone or final are dropped.
-- KEYS[1..4] tenancy (lib.lua), KEYS[5..6] the scheduled set and its
-- per-tenant counts (lib.lua, faas_schedule), then for each entry the
-- caller found due, its task hash and its owner's queue
-- ARGV[1] now (unix ms), ARGV[2] the new-task channel, ARGV[3..] for each
-- entry, its id and its owner as the caller read them
-- An entry no longer due (another caller promoted it) is skipped, and so is
-- one whose owner is not the one read (its hash went meanwhile: the caller
-- reads again).
-- Returns {entries promoted or dropped, due time (unix ms) of the
-- earliest entry left, -1 if none}.
local now = tonumber(ARGV[1])
local n = 0
for i = 3, #ARGV, 2 do
  local id, owner = ARGV[i], ARGV[i + 1]
  local task, q = KEYS[4 + i], KEYS[5 + i]
  local due = redis.call('ZSCORE', KEYS[5], id)
  if due and tonumber(due) <= now then
    local h = redis.call('HMGET', task, 'status', 'owner')
    if (h[2] or '') == owner and faas_unschedule(5, owner, id) then
      n = n + 1
      if h[1] == 'QUEUED' then
        if redis.call('LPUSH', q, '~' .. id) == 1 then
          faas_ring_join(owner)
        end
        redis.call('PUBLISH', ARGV[2], id)
      elseif h[1] == 'RUNNING' then
        redis.call('HDEL', task, 'next_attempt_at')
        faas_queue_next(q, owner, id)
        redis.call('PUBLISH', ARGV[2], id)
      end
    end
  end
end
local first = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
local next_due = -1
if first[2] then
  next_due = tonumber(first[2])
end
return {n, next_due}
