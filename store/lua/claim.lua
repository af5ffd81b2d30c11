-- Leases up to ARGV[1] runnable tasks to a worker, taking them from the
-- tenants' queues in turn (round robin), each tenant's oldest first, and
-- skipping the tenants at their cap of running tasks.
-- KEYS[1..4] tenancy (lib.lua), KEYS[5] leases, KEYS[6] stats
-- ARGV[1] max tasks, ARGV[2] worker, ARGV[3] now (unix ms),
-- ARGV[4] lease expiry (unix ms), ARGV[5] most tasks a tenant may have
-- leased (0: no cap), ARGV[6] largest payloads (function and arguments
-- together, bytes) returned here; larger ones are left for the caller to
-- read with a plain HMGET, as Lua would copy them in and out
-- The tenant at the head of the ring (the lowest turn) is served one task,
-- then moves behind every other tenant; a tenant whose queue empties leaves
-- the ring; a tenant at its cap is parked (out of the ring) until one of its
-- leases is dropped or the next reap. So one claim costs O(log tenants) per
-- task, plus O(log tenants) once for each capped tenant it parks.
-- Ids whose hash is gone, whose status is final (e.g. cancelled) or that are
-- already leased (cannot happen unless someone pushed a duplicate) are
-- dropped. A requeued task has status RUNNING (statuses never move
-- backwards) and is claimed like a QUEUED one.
-- Returns one array per claimed task:
--   {id, function_id, fn_payload, param_payload, fn_hash, isolation, attempts, fence, want_json, fetch,
--    owner, bundle}
-- where fetch is 1 (and the payloads empty) when they are to be read apart.
local n = tonumber(ARGV[1])
local cap = tonumber(ARGV[5])
local inline = tonumber(ARGV[6])
local out = {}
-- Ids in the default queue with the default tenant out of the ring (pushed
-- by an older version of these scripts): serve them too.
if redis.call('LLEN', KEYS[1]) > 0 then
  faas_ring_join('')
end
local function capped(tenant)
  return cap > 0 and (tonumber(redis.call('HGET', KEYS[4], tenant)) or 0) >= cap
end
while #out < n do
  local tenant = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if not tenant then
    break
  end
  if capped(tenant) then
    redis.call('ZREM', KEYS[2], tenant)
    redis.call('ZADD', KEYS[3], 0, tenant)
  else
    local q = faas_queue(tenant)
    local id = redis.call('RPOP', q)
    while id do
      local h = redis.call('HMGET', id, 'status', 'owner')
      local st = h[1]
      if (st == 'QUEUED' or st == 'RUNNING') and not redis.call('ZSCORE', KEYS[5], id) then
        if st == 'QUEUED' then
          redis.call('HINCRBY', KEYS[6], 'queued', -1)
          redis.call('HINCRBY', KEYS[6], 'running', 1)
        end
        local attempts = redis.call('HINCRBY', id, 'attempts', 1)
        local fence = redis.call('HINCRBY', id, 'fence', 1)
        redis.call('HSET', id, 'status', 'RUNNING', 'worker', ARGV[2])
        redis.call('HSETNX', id, 'started_at', ARGV[3])
        redis.call('ZADD', KEYS[5], ARGV[4], id)
        faas_leased(h[2] or '')
        local size = redis.call('HSTRLEN', id, 'fn_payload') + redis.call('HSTRLEN', id, 'param_payload')
        if size <= inline then
          local f = redis.call('HMGET', id, 'function_id', 'fn_payload', 'param_payload', 'fn_hash', 'isolation', 'want_json', 'bundle')
          out[#out + 1] = {id, f[1] or '', f[2] or '', f[3] or '', f[4] or '', f[5] or '', attempts, fence, f[6] or '', 0,
            h[2] or '', f[7] or ''}
        else
          local f = redis.call('HMGET', id, 'function_id', 'fn_hash', 'isolation', 'want_json', 'bundle')
          out[#out + 1] = {id, f[1] or '', '', '', f[2] or '', f[3] or '', attempts, fence, f[4] or '', 1,
            h[2] or '', f[5] or ''}
        end
        break
      end
      id = redis.call('RPOP', q)
    end
    if redis.call('LLEN', q) == 0 then
      faas_ring_leave(tenant)
    elseif capped(tenant) then
      redis.call('ZREM', KEYS[2], tenant)
      redis.call('ZADD', KEYS[3], 0, tenant)
    else
      faas_ring_back(tenant)
    end
  end
end
return out
