-- Shared functions, put in front of every script but put_function and renew
-- (scripts.go prepends this file, and before it the line
--   local BUCKETS_MS = {...}
-- with the histogram bucket bounds in milliseconds, from HistogramBuckets):
-- the tenants' queues and ring, and what happens to a task that becomes
-- final (its counters, its compact rewrite, its announcement).
--
-- The stats hash (passed to each script that makes tasks final) holds,
-- cluster-wide, updated in the same script as the transition, so that a
-- final task is always counted when it can be seen:
--   submitted                   tasks ever enqueued
--   f:<STATUS>:<KIND>:<l>:<e>   tasks that became final with that status and
--                               error kind ('' for none), whose latency
--                               (created -> final) fell in bucket l and
--                               execution (first claim -> final) in bucket e
--                               (0: never claimed): i is the first bound >=
--                               the value, #BUCKETS_MS + 1 for larger ones.
--                               One field per combination (a few hundred at
--                               most) instead of the six counters it took
--                               before; Stats sums them.
--   latency:<STATUS>:sum_ms, execution:<STATUS>:sum_ms
--   schedule_ticks:<fired|missed|skipped>   schedules' ticks by outcome
--                               (fire_schedule.lua)
-- (Stores written before also hold finished:<STATUS>, failed:<KIND>,
-- <h>:<STATUS>:<i> and <h>:<STATUS>:count, which Stats adds in.)
--
-- Tenants. Every script that starts with this file has the four tenancy
-- keys first:
--   KEYS[1] the default tenant's queue (faas:queue); tenant t's queue is
--           KEYS[1] .. ':' .. t (faas_queue). Producers LPUSH, consumers
--           RPOP, a requeued or released id is RPUSHed so that it is its
--           tenant's next. An entry is a task id, or '~' .. id for a task
--           whose payloads may be too large to pass through Lua (claim.lua
--           reads their sizes first).
--   KEYS[2] the ring: a sorted set of the tenants with queued work that may
--           be served, scored by their turn (claim.lua serves the lowest
--           score, then moves the tenant behind all others). A tenant with
--           queued work is in the ring or parked; one whose queue emptied
--           may stay in the ring until a claim finds its queue empty.
--   KEYS[3] the parked tenants: queued work, but at their cap of running
--           tasks when a claim looked; a tenant leaves it (back into the
--           ring) when one of its leases is dropped, or at the next reap.
--   KEYS[4] a hash: tenant -> number of its tasks leased now (claims made
--           and not yet completed, released, requeued, reaped or
--           cancelled). Kept in step with the lease set by every script
--           that adds or removes a lease; a field at 0 is deleted.
-- The default tenant (open mode, and tasks written before tenants existed)
-- is the empty string.

local function faas_queue(tenant)
  if tenant == nil or tenant == false or tenant == '' then
    return KEYS[1]
  end
  return KEYS[1] .. ':' .. tenant
end

-- faas_ring_back puts tenant behind every tenant in the ring (adding it, or
-- moving it if it is there).
local function faas_ring_back(tenant)
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  local turn = 0
  if last[2] then
    turn = tonumber(last[2]) + 1
  end
  redis.call('ZADD', KEYS[2], turn, tenant)
end

-- faas_ring_join adds tenant, which has queued work, to the back of the ring
-- unless it is in the ring already or parked.
local function faas_ring_join(tenant)
  if redis.call('ZSCORE', KEYS[2], tenant) or redis.call('ZSCORE', KEYS[3], tenant) then
    return
  end
  faas_ring_back(tenant)
end

-- faas_unpark moves a parked tenant back into the ring (or forgets it if its
-- queue q emptied meanwhile).
local function faas_unpark(tenant, q)
  if redis.call('ZREM', KEYS[3], tenant) == 1 and redis.call('LLEN', q) > 0 then
    faas_ring_back(tenant)
  end
end

-- faas_deferred, when a script sets it to a table, holds the decrements
-- of the running counts (tenant -> leases dropped) that faas_lease_dropped
-- did not write yet; faas_settle writes them. The complete-and-claim
-- script defers when no running cap is set: the claim that follows a
-- completion most often leases a task of the same tenant, and the
-- decrement and the increment cancel out (two HINCRBYs fewer per task).
local faas_deferred = nil

-- faas_leased counts a new lease of one of tenant's tasks.
local function faas_leased(tenant)
  tenant = tenant or ''
  local held = faas_deferred and faas_deferred[tenant]
  if held and held > 0 then
    faas_deferred[tenant] = held - 1
    return
  end
  redis.call('HINCRBY', KEYS[4], tenant, 1)
end

-- faas_lease_dropped accounts for a lease of one of tenant's tasks that was
-- just removed from the lease set: one task fewer running, so a parked
-- tenant may be served again (capped: whether tenants can be parked at
-- all, i.e. a cap of running tasks is set; q: the tenant's queue).
local function faas_lease_dropped(tenant, capped, q)
  tenant = tenant or ''
  if faas_deferred and not capped then
    faas_deferred[tenant] = (faas_deferred[tenant] or 0) + 1
    return
  end
  if redis.call('HINCRBY', KEYS[4], tenant, -1) <= 0 then
    redis.call('HDEL', KEYS[4], tenant)
  end
  if capped then
    faas_unpark(tenant, q)
  end
end

-- faas_settle writes the decrements faas_deferred holds.
local function faas_settle()
  for tenant, n in pairs(faas_deferred) do
    if n > 0 and redis.call('HINCRBY', KEYS[4], tenant, -n) <= 0 then
      redis.call('HDEL', KEYS[4], tenant)
    end
  end
  faas_deferred = nil
end

-- faas_queue_next puts id at the consumer end of its tenant's queue q, so
-- that it is the tenant's next task (requeue, release, reap, promote).
local function faas_queue_next(q, tenant, id)
  tenant = tenant or ''
  if redis.call('RPUSH', q, '~' .. id) == 1 then
    faas_ring_join(tenant)
  end
end

-- A final task keeps these fields from before, besides the ones its final
-- transition sets (status, result, error, finished_at, ...); its payloads,
-- fence, fn_hash, isolation and bundle go. faas_read reads them, with the
-- status and fence the transitions check, into a table by name (a missing
-- field is false).
-- (errors: the errors of the attempts a retry policy ran again, a JSON
-- array; run_at: when a delayed task was due; callback_url: where its
-- completion webhook goes.) retried, the number of those retries, is read
-- too but not kept.
local FAAS_KEEP = {'owner', 'created_at', 'started_at', 'function_id', 'attempts', 'worker', 'want_json', 'errors',
  'run_at', 'callback_url'}

local function faas_read(id)
  local v = redis.call('HMGET', id, 'status', 'fence', 'retried', unpack(FAAS_KEEP))
  local h = {status = v[1], fence = v[2], retried = v[3]}
  for i, f in ipairs(FAAS_KEEP) do
    h[f] = v[i + 3]
  end
  return h
end

-- faas_finish rewrites task id (its hash: task), read with faas_read into h, as final: the
-- kept fields and the given ones (a flat list of field/value pairs) only.
-- Deleted and written anew, a no-op task's hash is small enough for Redis
-- to store it compactly (a listpack, about 0.4 KB in all) instead of the
-- hash table its payloads made it. It expires ttl_ms later (0: never), and
-- its id is published on the done channel, followed, when the fields come
-- to at most FAAS_DONE_INLINE bytes, by a newline and the fields as a JSON
-- array of field/value strings: a waiting API answers from the message
-- without reading the task back (waiter.go).
local FAAS_DONE_INLINE = 4096
local function faas_bucket(ms)
  if ms < 0 then
    ms = 0
  end
  for j, b in ipairs(BUCKETS_MS) do
    if ms <= b then
      return j, ms
    end
  end
  return #BUCKETS_MS + 1, ms
end

-- faas_count counts task h (from faas_read, before its rewrite) as final
-- with status and error kind ('' for none) at now (unix ms), in stats.
local function faas_count(stats, h, status, kind, now)
  now = tonumber(now)
  local created, started = tonumber(h.created_at), tonumber(h.started_at)
  local lb, eb, ms = 0, 0, 0
  if created then
    lb, ms = faas_bucket(now - created)
    redis.call('HINCRBY', stats, 'latency:' .. status .. ':sum_ms', ms)
  end
  if started and h.status == 'RUNNING' then
    eb, ms = faas_bucket(now - started)
    redis.call('HINCRBY', stats, 'execution:' .. status .. ':sum_ms', ms)
  end
  redis.call('HINCRBY', stats, 'f:' .. status .. ':' .. kind .. ':' .. lb .. ':' .. eb, 1)
end

-- fin = {stats key, status, error kind ('' none), now (unix ms), hooks
-- key}: how faas_finish counts the task, and where a task with a
-- callback_url is queued for its completion webhook: the hooks key is the
-- sorted set of task ids whose webhook is to be delivered, scored by when
-- (unix ms; hooks_claim.lua and hooks_record.lua take it from there), and
-- the task gets callback_state 'pending'; its id is published on the
-- channel of the same name as the hooks key, which wakes the deliverers.
-- Every script that calls faas_finish takes the hooks key in its KEYS. A
-- task without a callback costs nothing more than the callback_url field
-- of faas_read's HMGET.
local function faas_finish(task, id, h, fields, ttl_ms, done, fin)
  faas_count(fin.stats, h, fin.status, fin.kind, fin.now)
  local args = {}
  for _, f in ipairs(FAAS_KEEP) do
    if h[f] and h[f] ~= '' then
      args[#args + 1] = f
      args[#args + 1] = h[f]
    end
  end
  for i = 1, #fields do
    args[#args + 1] = fields[i]
  end
  if h.callback_url and h.callback_url ~= '' then
    args[#args + 1] = 'callback_state'
    args[#args + 1] = 'pending'
    redis.call('ZADD', fin.hooks, fin.now, id)
    redis.call('PUBLISH', fin.hooks, id)
  end
  redis.call('DEL', task)
  redis.call('HSET', task, unpack(args))
  local ttl = tonumber(ttl_ms)
  if ttl and ttl > 0 then
    redis.call('PEXPIRE', task, ttl)
  end
  local size = 0
  for i = 1, #args do
    size = size + #args[i]
  end
  if size <= FAAS_DONE_INLINE then
    redis.call('PUBLISH', done, id .. '\n' .. cjson.encode(args))
  else
    redis.call('PUBLISH', done, id)
  end
end

-- faas_requeue_or_lose handles a RUNNING task id (its hash: task, h from faas_read; q: its owner's queue) whose
-- worker is gone and whose lease was just removed (reap, requeue): with
-- attempts left (attempts its retry policy made do not count) it goes back to the consumer end of its tenant's queue and
-- stays RUNNING (the attempt stays counted); without, it becomes FAILED
-- with WORKER_LOST and is announced on the done channel. lost = {max
-- attempts, now (unix ms), result (pickled exception), error JSON, result
-- TTL (ms), done channel, capped, stats key, hooks key}. Returns true if
-- the task was requeued.
local function faas_requeue_or_lose(task, id, h, lost, q)
  faas_lease_dropped(h.owner, lost.capped, q)
  if (tonumber(h.attempts) or 0) - (tonumber(h.retried) or 0) < lost.max then
    faas_queue_next(q, h.owner, id)
    return true
  end
  faas_finish(task, id, h, {'status', 'FAILED', 'result', lost.result, 'error', lost.err, 'finished_at', lost.now},
    lost.ttl, lost.done, {stats = lost.stats, status = 'FAILED', kind = 'WORKER_LOST', now = lost.now, hooks = lost.hooks})
  return false
end

-- faas_schedule puts task id of tenant in the scheduled set, due at due
-- (unix ms): KEYS[sched] the set, KEYS[sched + 1] the hash tenant -> its
-- entries there (what a queue cap counts besides the queue); the due time
-- is published on channel, so that dispatchers waiting for the next due
-- entry look again (promote.lua takes due entries out).
local function faas_schedule(sched, tenant, id, due, channel)
  redis.call('ZADD', KEYS[sched], due, id)
  redis.call('HINCRBY', KEYS[sched + 1], tenant or '', 1)
  redis.call('PUBLISH', channel, due)
end

-- faas_unschedule takes id out of the scheduled set (see faas_schedule);
-- returns true if it was there.
local function faas_unschedule(sched, tenant, id)
  if redis.call('ZREM', KEYS[sched], id) == 0 then
    return false
  end
  tenant = tenant or ''
  if redis.call('HINCRBY', KEYS[sched + 1], tenant, -1) <= 0 then
    redis.call('HDEL', KEYS[sched + 1], tenant)
  end
  return true
end
