-- Extends the leases a worker still holds.
-- KEYS[1] leases, KEYS[2..] the task hashes, in the order of the triples
-- ARGV[1] worker, ARGV[2] new expiry (unix ms), ARGV[3..] triples of task
-- id, fence, owner
-- A lease is held if the task is RUNNING, of that owner, was claimed by
-- this worker with this fence, and is still in the lease set (not reaped).
-- Returns the ids the worker no longer holds.
local lost = {}
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local h = redis.call('HMGET', KEYS[i / 3 + 1], 'status', 'worker', 'fence', 'owner')
  if h[1] == 'RUNNING' and h[2] == ARGV[1] and h[3] == ARGV[i + 1] and (h[4] or '') == ARGV[i + 2] and
      redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
  else
    lost[#lost + 1] = id
  end
end
return lost
