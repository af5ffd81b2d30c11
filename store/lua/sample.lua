-- Appends one stats sample to the dashboard's list of samples unless the
-- newest is younger than the gap: every API instance samples, the list gets
-- one sample per gap. Entries are "<unix ms> <json>", newest first.
-- KEYS[1] the samples list
-- ARGV[1] now (unix ms), ARGV[2] gap (ms), ARGV[3] most entries kept,
-- ARGV[4] the sample's JSON, ARGV[5] the list's expiry (ms)
-- Returns 1 if the sample was added, 0 if not.
local now = tonumber(ARGV[1])
local newest = redis.call('LINDEX', KEYS[1], 0)
if newest then
  local t = tonumber(string.match(newest, '^(%d+) '))
  if t and now - t < tonumber(ARGV[2]) then
    return 0 -- too soon (or this clock is behind the last sampler's)
  end
end
redis.call('LPUSH', KEYS[1], ARGV[1] .. ' ' .. ARGV[4])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[3]) - 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
