-- Creates QUEUED tasks of one tenant, makes them runnable in order and
-- announces them: all of them or none, if any id is taken or the tenant's
-- queue would grow past its cap.
-- KEYS[1..4] tenancy (lib.lua), KEYS[5] stats, KEYS[6] the tenant's recent
-- list, KEYS[7..] task hashes (the key is the task id)
-- ARGV[1] new-task channel, ARGV[2] length of the recent list,
-- ARGV[3] tenant ('' for the default one), ARGV[4] most ids the tenant's
-- queue may hold (0: no cap), ARGV[5] n, ARGV[6..5+2n] field/value pairs
-- every task has, ARGV[6+2n..] param_payload of each task, in KEYS order
-- Returns {created, queue length}: created is the number of tasks created,
-- 0 if an id was taken, -1 if the queue would pass its cap; the length is
-- the tenant's queue's afterwards.
local tenant = ARGV[3]
local q = faas_queue(tenant)
local depth = redis.call('LLEN', q)
local count = #KEYS - 6
local cap = tonumber(ARGV[4])
if cap > 0 and depth + count > cap then
  return {-1, depth}
end
for i = 7, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    return {0, depth}
  end
end
local n = tonumber(ARGV[5])
local shared = {}
for i = 6, 5 + 2 * n do
  shared[#shared + 1] = ARGV[i]
end
local first = 6 + 2 * n
for i = 7, #KEYS do
  local id = KEYS[i]
  redis.call('HSET', id, 'param_payload', ARGV[first + i - 7], unpack(shared))
  redis.call('LPUSH', q, id)
  redis.call('LPUSH', KEYS[6], id)
  redis.call('PUBLISH', ARGV[1], id)
end
faas_ring_join(tenant)
redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[2]) - 1)
redis.call('HINCRBY', KEYS[5], 'submitted', count)
redis.call('HINCRBY', KEYS[5], 'queued', count)
return {count, depth + count}
