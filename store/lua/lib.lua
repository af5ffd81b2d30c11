-- Shared functions, put in front of every script but put_function and renew
-- (scripts.go prepends this file, and before it the line
--   local BUCKETS_MS = {...}
-- with the histogram bucket bounds in milliseconds, from HistogramBuckets):
-- the task counters, and the tenants' queues (below).
--
-- The stats hash (KEYS of each script) holds, cluster-wide:
--   submitted                 tasks ever enqueued
--   queued, running           tasks now QUEUED, RUNNING (gauges)
--   finished:<STATUS>         tasks that became COMPLETED / FAILED
--   failed:<KIND>             FAILED tasks by error kind
--   <h>:<STATUS>:<i>          histogram h (latency: created -> final;
--                             execution: first claim -> final) bucket i, not
--                             cumulative: i is the first bound >= the value,
--                             #BUCKETS_MS + 1 for larger values
--   <h>:<STATUS>:sum_ms, <h>:<STATUS>:count

local function faas_observe(stats, h, status, ms)
  if ms < 0 then
    ms = 0
  end
  local i = #BUCKETS_MS + 1
  for j, b in ipairs(BUCKETS_MS) do
    if ms <= b then
      i = j
      break
    end
  end
  local p = h .. ':' .. status .. ':'
  redis.call('HINCRBY', stats, p .. i, 1)
  redis.call('HINCRBY', stats, p .. 'sum_ms', ms)
  redis.call('HINCRBY', stats, p .. 'count', 1)
end

-- faas_final accounts for task id (its hash is at key id) having just become
-- final with status and error kind ('' for none) at now_ms, coming from
-- prev ('QUEUED' or 'RUNNING'); it sets the hash to expire ttl_ms later
-- (0: never) and announces the id on the done channel.
local function faas_final(stats, id, prev, status, kind, now_ms, ttl_ms, done)
  local now = tonumber(now_ms)
  local t = redis.call('HMGET', id, 'created_at', 'started_at')
  if prev == 'QUEUED' then
    redis.call('HINCRBY', stats, 'queued', -1)
  else
    redis.call('HINCRBY', stats, 'running', -1)
  end
  redis.call('HINCRBY', stats, 'finished:' .. status, 1)
  if kind ~= '' then
    redis.call('HINCRBY', stats, 'failed:' .. kind, 1)
  end
  local created = tonumber(t[1])
  if created then
    faas_observe(stats, 'latency', status, now - created)
  end
  local started = tonumber(t[2])
  if started and prev == 'RUNNING' then
    faas_observe(stats, 'execution', status, now - started)
  end
  local ttl = tonumber(ttl_ms)
  if ttl and ttl > 0 then
    redis.call('PEXPIRE', id, ttl)
  end
  redis.call('PUBLISH', done, id)
end


-- Tenants. Every script that starts with this file has the four tenancy
-- keys first:
--   KEYS[1] the default tenant's queue (faas:queue); tenant t's queue is
--           KEYS[1] .. ':' .. t (faas_queue). Producers LPUSH, consumers
--           RPOP, a requeued or released id is RPUSHed so that it is its
--           tenant's next.
--   KEYS[2] the ring: a sorted set of the tenants with queued work that may
--           be served, scored by their turn (claim.lua serves the lowest
--           score, then moves the tenant behind all others).
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
  if tenant == nil or tenant == '' then
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

-- faas_ring_leave forgets tenant, whose queue is empty.
local function faas_ring_leave(tenant)
  redis.call('ZREM', KEYS[2], tenant)
  redis.call('ZREM', KEYS[3], tenant)
end

-- faas_unpark moves a parked tenant back into the ring (or forgets it if its
-- queue emptied meanwhile).
local function faas_unpark(tenant)
  if redis.call('ZREM', KEYS[3], tenant) == 1 and redis.call('LLEN', faas_queue(tenant)) > 0 then
    faas_ring_back(tenant)
  end
end

-- faas_leased counts a new lease of one of tenant's tasks.
local function faas_leased(tenant)
  return redis.call('HINCRBY', KEYS[4], tenant or '', 1)
end

-- faas_lease_dropped accounts for a lease of one of tenant's tasks that was
-- just removed from the lease set: one task fewer running, so a parked
-- tenant may be served again.
local function faas_lease_dropped(tenant)
  tenant = tenant or ''
  if redis.call('HINCRBY', KEYS[4], tenant, -1) <= 0 then
    redis.call('HDEL', KEYS[4], tenant)
  end
  faas_unpark(tenant)
end

-- faas_queue_next puts id at the consumer end of its tenant's queue, so
-- that it is the tenant's next task (requeue, release, reap).
local function faas_queue_next(tenant, id)
  tenant = tenant or ''
  redis.call('RPUSH', faas_queue(tenant), id)
  faas_ring_join(tenant)
end

-- faas_requeue_or_lose handles a RUNNING task whose worker is gone and
-- whose lease was just removed (reap, requeue): with attempts left it goes
-- back to the consumer end of its tenant's queue and stays RUNNING (the
-- attempt stays counted); without, it becomes FAILED with WORKER_LOST and
-- is announced on the done channel. lost = {max attempts, now (unix ms),
-- result (pickled exception), error JSON, result TTL (ms), done channel}.
-- Returns true if the task was requeued.
local function faas_requeue_or_lose(stats, id, attempts, tenant, lost)
  faas_lease_dropped(tenant)
  if (tonumber(attempts) or 0) < lost.max then
    faas_queue_next(tenant, id)
    return true
  end
  redis.call('HSET', id, 'status', 'FAILED', 'result', lost.result, 'error', lost.err, 'finished_at', lost.now)
  faas_final(stats, id, 'RUNNING', 'FAILED', 'WORKER_LOST', lost.now, lost.ttl, lost.done)
  return false
end
