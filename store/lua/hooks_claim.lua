-- Claims completion webhooks that are due, for one deliverer: each due
-- entry of the hooks set (task ids scored by when their webhook is due,
-- unix ms; lib.lua's faas_finish adds them) is moved to the lease expiry,
-- so that no other deliverer takes it while this one delivers, and its
-- task's callback_attempts counts one more: that number is the claim's
-- token (hooks_record.lua only records the outcome of the latest claim).
-- A deliverer that dies leaves the entry to come due again at the lease
-- expiry, for any deliverer to retry. Entries whose task is gone (result
-- TTL), has no callback_url or is no longer pending are dropped.
-- KEYS[1] the hooks set, KEYS[2..] the task hashes of the entries the
-- caller found due
-- ARGV[1] now (unix ms), ARGV[2] lease expiry (unix ms), ARGV[3..] those
-- entries' task ids, in KEYS order; an entry no longer due (another
-- deliverer claimed it) is skipped
-- Returns {{task id, attempt}, ...}, due time (unix ms) of the earliest
-- entry left, -1 if none}.
local now = tonumber(ARGV[1])
local out = {}
for i = 3, #ARGV do
  local id, task = ARGV[i], KEYS[i - 1]
  local due = redis.call('ZSCORE', KEYS[1], id)
  if due and tonumber(due) <= now then
    local h = redis.call('HMGET', task, 'status', 'callback_url', 'callback_state', 'callback_attempts')
    if not h[1] or not h[2] or h[3] ~= 'pending' then
      redis.call('ZREM', KEYS[1], id)
    else
      local attempt = (tonumber(h[4]) or 0) + 1
      redis.call('HSET', task, 'callback_attempts', attempt)
      redis.call('ZADD', KEYS[1], ARGV[2], id)
      out[#out + 1] = {id, attempt}
    end
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next_due = -1
if first[2] then
  next_due = tonumber(first[2])
end
return {out, next_due}
