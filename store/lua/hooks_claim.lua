-- Claims completion webhooks that are due, for one deliverer: each due
-- entry of the hooks set (task ids scored by when their webhook is due,
-- unix ms; lib.lua's faas_finish adds them) is moved to the lease expiry,
-- so that no other deliverer takes it while this one delivers, and its
-- task's callback_attempts counts one more: that number is the claim's
-- token (hooks_record.lua only records the outcome of the latest claim).
-- A deliverer that dies leaves the entry to come due again at the lease
-- expiry, for any deliverer to retry. Entries whose task is gone (result
-- TTL), has no callback_url or is no longer pending are dropped.
-- KEYS[1] the hooks set
-- ARGV[1] now (unix ms), ARGV[2] lease expiry (unix ms), ARGV[3] most
-- entries to claim
-- Returns {{task id, attempt}, ...}, due time (unix ms) of the earliest
-- entry left, -1 if none}.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local h = redis.call('HMGET', id, 'status', 'callback_url', 'callback_state', 'callback_attempts')
  if not h[1] or not h[2] or h[3] ~= 'pending' then
    redis.call('ZREM', KEYS[1], id)
  else
    local attempt = (tonumber(h[4]) or 0) + 1
    redis.call('HSET', id, 'callback_attempts', attempt)
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = {id, attempt}
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next_due = -1
if first[2] then
  next_due = tonumber(first[2])
end
return {out, next_due}
