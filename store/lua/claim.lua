-- Pops up to ARGV[1] runnable task ids from the consumer end of the queue
-- and leases them to a worker.
-- KEYS[1] queue, KEYS[2] leases
-- ARGV[1] max tasks, ARGV[2] worker, ARGV[3] now (unix ms), ARGV[4] lease expiry (unix ms)
-- Ids whose hash is gone, whose status is final (e.g. cancelled) or that are
-- already leased (cannot happen unless someone pushed a duplicate) are
-- dropped. A requeued task has status RUNNING (statuses never move
-- backwards) and is claimed like a QUEUED one.
-- Returns one array per claimed task:
--   {id, function_id, fn_payload, param_payload, fn_hash, isolation, attempts, fence, want_json}
local n = tonumber(ARGV[1])
local out = {}
while #out < n do
  local id = redis.call('RPOP', KEYS[1])
  if not id then
    break
  end
  local st = redis.call('HGET', id, 'status')
  if (st == 'QUEUED' or st == 'RUNNING') and not redis.call('ZSCORE', KEYS[2], id) then
    local attempts = redis.call('HINCRBY', id, 'attempts', 1)
    local fence = redis.call('HINCRBY', id, 'fence', 1)
    redis.call('HSET', id, 'status', 'RUNNING', 'worker', ARGV[2])
    redis.call('HSETNX', id, 'started_at', ARGV[3])
    redis.call('ZADD', KEYS[2], ARGV[4], id)
    local f = redis.call('HMGET', id, 'function_id', 'fn_payload', 'param_payload', 'fn_hash', 'isolation', 'want_json')
    out[#out + 1] = {id, f[1] or '', f[2] or '', f[3] or '', f[4] or '', f[5] or '', attempts, fence, f[6] or ''}
  end
end
return out
