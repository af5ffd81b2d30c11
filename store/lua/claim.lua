-- faas_claim(leases, o) leases up to ARGV[o] runnable tasks to a worker,
-- taking them from the tenants' queues in turn (round robin), each tenant's
-- oldest first, and skipping the tenants at their cap of running tasks
-- (scripts.go makes the claim script of it, and the complete-and-claim
-- one with complete.lua).
-- KEYS[1..4] tenancy (lib.lua), leases: the lease set
-- ARGV[o] max tasks, ARGV[o+1] worker, ARGV[o+2] now (unix ms),
-- ARGV[o+3] lease expiry (unix ms), ARGV[o+4] most tasks a tenant may have
-- leased (0: no cap), ARGV[o+5] largest payloads (function and arguments
-- together, bytes) returned here for a '~' entry; larger ones are left for
-- the caller to read with a plain HMGET, as Lua would copy them in and out
-- The tenant at the head of the ring (the lowest turn) is served one task,
-- then moves behind every other tenant; a tenant alone in the ring is
-- served all the tasks asked for; a tenant whose queue is found empty
-- leaves the ring, unless it is alone there; a tenant at its cap is parked (out of the ring) until
-- one of its leases is dropped or the next reap. So one claim costs
-- O(log tenants) per task, plus O(log tenants) once for each capped tenant
-- it parks.
-- Ids whose hash is gone, whose status is final (e.g. cancelled) or that are
-- already leased (cannot happen unless someone pushed a duplicate) are
-- dropped. A requeued task has status RUNNING (statuses never move
-- backwards) and is claimed like a QUEUED one.
-- Returns one array per claimed task:
--   {id, function_id, fn_payload, param_payload, fn_hash, isolation, attempts, fence, want_json, fetch,
--    owner, bundle, retry (the retry policy's JSON, '' none), retried (retries made so far),
--    timeout_ms, memory_bytes (the function's settings, 0 none), env (JSON array of NAME=value, '' none)}
-- where fetch is 1 (and the payloads empty) when they are to be read apart.
local FAAS_CLAIM_META = {'status', 'owner', 'attempts', 'fence', 'started_at', 'function_id', 'fn_hash', 'isolation',
  'want_json', 'bundle', 'retry', 'retried', 'timeout_ms', 'memory_bytes', 'env'}
local FAAS_CLAIM_ALL = {unpack(FAAS_CLAIM_META)}
FAAS_CLAIM_ALL[#FAAS_CLAIM_ALL + 1] = 'fn_payload'
FAAS_CLAIM_ALL[#FAAS_CLAIM_ALL + 1] = 'param_payload'

local function faas_claim(leases, o)
  local n = tonumber(ARGV[o])
  local worker, now, expiry = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3]
  local cap = tonumber(ARGV[o + 4])
  local inline = tonumber(ARGV[o + 5])
  local out = {}

  local function capped(tenant)
    return cap > 0 and (tonumber(redis.call('HGET', KEYS[4], tenant)) or 0) >= cap
  end

  local function park(tenant)
    redis.call('ZREM', KEYS[2], tenant)
    redis.call('ZADD', KEYS[3], 0, tenant)
  end

  -- take leases the task of queue entry e, or returns nil if it is not
  -- runnable.
  local function take(e)
    local checked = string.sub(e, 1, 1) == '~'
    local id = e
    local h
    if checked then
      id = string.sub(e, 2)
      h = redis.call('HMGET', id, unpack(FAAS_CLAIM_META))
    else
      h = redis.call('HMGET', id, unpack(FAAS_CLAIM_ALL))
    end
    local st = h[1]
    if st ~= 'QUEUED' and st ~= 'RUNNING' then
      return nil
    end
    if redis.call('ZADD', leases, 'NX', expiry, id) == 0 then
      return nil
    end
    local attempts = (tonumber(h[3]) or 0) + 1
    -- The claim's time (unix ms) or one more than the last fence: it grows
    -- also across a Sentinel failover whose promoted replica missed the
    -- last claims (their fences were granted earlier, so lower), as long as
    -- the dispatchers' clocks are within the failover's seconds of each
    -- other; a stale result is rejected for any other fence anyway.
    local fence = math.max((tonumber(h[4]) or 0) + 1, tonumber(now))
    if h[5] then
      redis.call('HSET', id, 'status', 'RUNNING', 'worker', worker, 'attempts', attempts, 'fence', fence)
    else
      redis.call('HSET', id, 'status', 'RUNNING', 'worker', worker, 'attempts', attempts, 'fence', fence,
        'started_at', now)
    end
    if h[12] then
      redis.call('HDEL', id, 'next_attempt_at') -- a retry's wait is over
    end
    local owner = h[2] or ''
    faas_leased(owner)
    local fetch, fn, param = 0, h[16] or '', h[17] or ''
    if checked then
      if redis.call('HSTRLEN', id, 'fn_payload') + redis.call('HSTRLEN', id, 'param_payload') <= inline then
        local p = redis.call('HMGET', id, 'fn_payload', 'param_payload')
        fn, param = p[1] or '', p[2] or ''
      else
        fetch = 1
      end
    end
    return {id, h[6] or '', fn, param, h[7] or '', h[8] or '', attempts, fence, h[9] or '', fetch, owner, h[10] or '',
      h[11] or '', tonumber(h[12]) or 0, tonumber(h[13]) or 0, tonumber(h[14]) or 0, h[15] or ''}
  end

  while #out < n do
    local head = redis.call('ZRANGE', KEYS[2], 0, 1)
    local tenant = head[1]
    if not tenant then
      break
    end
    if capped(tenant) then
      park(tenant)
    else
      local alone = head[2] == nil
      local q = faas_queue(tenant)
      local served = false
      while #out < n and not served do
        local e = redis.call('RPOP', q)
        if not e then
          if alone then
            -- Stays: its next task would only bring it back (4 commands
            -- at the enqueue instead of 1), and nobody else waits.
            return out
          end
          redis.call('ZREM', KEYS[2], tenant)
          break
        end
        local row = take(e)
        if row then
          out[#out + 1] = row
          served = not alone or capped(tenant)
        end
      end
      if served then
        if capped(tenant) then
          park(tenant)
        elseif not alone then
          faas_ring_back(tenant)
        end
      end
    end
  end
  return out
end
