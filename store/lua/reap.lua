-- Handles leases that expired at or before ARGV[1].
-- KEYS[1] queue, KEYS[2] leases
-- ARGV[1] now (unix ms), ARGV[2] max attempts, ARGV[3] batch size,
-- ARGV[4] done channel, ARGV[5] result for a failed task (pickled exception),
-- ARGV[6] error JSON for a failed task
-- A task with attempts left goes back to the consumer end of the queue and
-- stays RUNNING; one without becomes FAILED and is announced on the done
-- channel. Leases of tasks that are gone or already final are dropped.
-- Returns {requeued ids, failed ids, number of expired leases handled}.
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local max = tonumber(ARGV[2])
local requeued, failed = {}, {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[2], id)
  local h = redis.call('HMGET', id, 'status', 'attempts')
  if h[1] == 'RUNNING' then
    if (tonumber(h[2]) or 0) < max then
      redis.call('RPUSH', KEYS[1], id)
      requeued[#requeued + 1] = id
    else
      redis.call('HSET', id, 'status', 'FAILED', 'result', ARGV[5], 'error', ARGV[6], 'finished_at', ARGV[1])
      redis.call('PUBLISH', ARGV[4], id)
      failed[#failed + 1] = id
    end
  end
end
return {requeued, failed, #ids}
