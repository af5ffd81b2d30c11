-- Creates a schedule: its hash, its place in its tenant's index and, with
-- a next tick, in the active set (paused: in the paused set); the next tick
-- is published so that waiting dispatchers look again.
-- KEYS[1] the schedule hash, KEYS[2] the active set, KEYS[3] the tenant's
-- index, KEYS[4] the paused set
-- ARGV[1] id, ARGV[2] created_at (unix ms), ARGV[3] next tick (unix ms,
-- -1: none), ARGV[4] the schedules channel, ARGV[5] '1' if paused,
-- ARGV[6..] field/value pairs
-- Returns 1, or 0 if the id is taken.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6, #ARGV))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
if ARGV[5] == '1' then
  redis.call('SADD', KEYS[4], ARGV[1])
end
if tonumber(ARGV[3]) >= 0 then
  redis.call('HSET', KEYS[1], 'next_tick', ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  redis.call('PUBLISH', ARGV[4], ARGV[3])
end
return 1
