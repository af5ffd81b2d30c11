-- Pauses, resumes or deletes a schedule of one tenant; another tenant's is
-- left alone and answered as unknown.
-- KEYS[1] the schedule hash, KEYS[2] the active set, KEYS[3] the tenant's
-- index, KEYS[4] the paused set
-- ARGV[1] id, ARGV[2] tenant ('' the default one), ARGV[3] 'pause',
-- 'resume' or 'delete', ARGV[4] for resume: the next tick (unix ms, -1:
-- none), ARGV[5] the schedules channel
-- Resuming a schedule that is not paused leaves its next tick alone.
-- Returns 1, or 0 for an unknown schedule (or another tenant's).
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner or owner ~= ARGV[2] then
  return 0
end
local op = ARGV[3]
if op == 'delete' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('SREM', KEYS[4], ARGV[1])
elseif op == 'pause' then
  redis.call('HSET', KEYS[1], 'paused', '1')
  redis.call('HDEL', KEYS[1], 'next_tick')
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('SADD', KEYS[4], ARGV[1])
elseif redis.call('HGET', KEYS[1], 'paused') == '1' then
  redis.call('HSET', KEYS[1], 'paused', '0')
  redis.call('SREM', KEYS[4], ARGV[1])
  if tonumber(ARGV[4]) >= 0 then
    redis.call('HSET', KEYS[1], 'next_tick', ARGV[4])
    redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
    redis.call('PUBLISH', ARGV[5], ARGV[4])
  end
end
return 1
