-- Creates a QUEUED task, makes it runnable and announces it.
-- KEYS[1] task hash, KEYS[2] queue
-- ARGV[1] task id, ARGV[2] new-task channel, ARGV[3..] field/value pairs
-- Returns 1 if created, 0 if the key already existed.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1
