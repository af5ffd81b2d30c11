-- Fails a task that has not started yet. Its id stays in the queue; Claim
-- drops it when it comes up.
-- KEYS[1] task hash
-- ARGV[1] task id, ARGV[2] done channel, ARGV[3] now (unix ms),
-- ARGV[4] result (pickled exception), ARGV[5] error JSON
-- Returns 1 if cancelled, 0 if the task is no longer QUEUED, -1 if unknown.
local st = redis.call('HGET', KEYS[1], 'status')
if not st then
  return -1
end
if st ~= 'QUEUED' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'FAILED', 'result', ARGV[4], 'error', ARGV[5], 'finished_at', ARGV[3])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1
