-- Makes the scheduled tasks that are due runnable: a delayed task (QUEUED)
-- joins the producer end of its tenant's queue like a new task, a task
-- waiting for its retry (RUNNING) the consumer end (it is its tenant's
-- next, as a requeued task is). Each promoted id is published on the
-- new-task channel. Entries of tasks that are gone or final are dropped.
-- KEYS[1..4] tenancy (lib.lua), KEYS[5..6] the scheduled set and its
-- per-tenant counts (lib.lua, faas_schedule)
-- ARGV[1] now (unix ms), ARGV[2] most entries to promote, ARGV[3] the
-- new-task channel
-- Returns {entries promoted or dropped, due time (unix ms) of the earliest
-- entry left, -1 if none}.
local ids = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local h = redis.call('HMGET', id, 'status', 'owner')
  local tenant = h[2] or ''
  faas_unschedule(5, tenant, id)
  if h[1] == 'QUEUED' then
    if redis.call('LPUSH', faas_queue(tenant), '~' .. id) == 1 then
      faas_ring_join(tenant)
    end
    redis.call('PUBLISH', ARGV[3], id)
  elseif h[1] == 'RUNNING' then
    redis.call('HDEL', id, 'next_attempt_at')
    faas_queue_next(tenant, id)
    redis.call('PUBLISH', ARGV[3], id)
  end
end
local first = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
local next_due = -1
if first[2] then
  next_due = tonumber(first[2])
end
return {#ids, next_due}
