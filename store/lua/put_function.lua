-- Registers a function unless its key already exists.
-- KEYS[1] function hash
-- ARGV    field/value pairs
-- Returns 1 if written, 0 if the key already existed.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
