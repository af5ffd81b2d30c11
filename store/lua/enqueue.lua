-- Creates QUEUED tasks of one tenant, makes them runnable in order and
-- announces them: all of them or none, if any id is taken or the tenant's
-- queue would grow past its cap.
-- KEYS[1..4] tenancy (lib.lua), KEYS[5] stats, KEYS[6] the tenant's recent
-- list, KEYS[7..6+c] task hashes (the key is the task id), and when the
-- payloads were staged, KEYS[7+c..6+2c] their staged hashes in the same
-- order (holding fn_payload and param_payload; renamed to the task hashes
-- here, so that large payloads never pass through Lua)
-- ARGV[1] new-task channel, ARGV[2] length of the recent list,
-- ARGV[3] tenant ('' for the default one), ARGV[4] most ids the tenant's
-- queue may hold (0: no cap), ARGV[5] n, ARGV[6..5+2n] field/value pairs
-- every task has, ARGV[6+2n] 1 if staged, else 0 and ARGV[7+2n..] the
-- param_payload of each task, in KEYS order
-- Returns {created, queue length}: created is the number of tasks created,
-- 0 if an id was taken, -1 if the queue would pass its cap; the length is
-- the tenant's queue's afterwards. Staged hashes are deleted when nothing
-- is created.
local tenant = ARGV[3]
local q = faas_queue(tenant)
local depth = redis.call('LLEN', q)
local n = tonumber(ARGV[5])
local staged = ARGV[6 + 2 * n] == '1'
local count = #KEYS - 6
if staged then
  count = math.floor(count / 2)
end
local function refuse(code)
  if staged then
    for i = 7 + count, #KEYS do
      redis.call('DEL', KEYS[i])
    end
  end
  return {code, depth}
end
local cap = tonumber(ARGV[4])
if cap > 0 and depth + count > cap then
  return refuse(-1)
end
for i = 7, 6 + count do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    return refuse(0)
  end
end
if staged then
  for i = 7, 6 + count do
    if redis.call('EXISTS', KEYS[i + count]) == 0 then
      -- expired before the script ran: the caller may retry
      return refuse(-2)
    end
  end
end
local shared = {}
for i = 6, 5 + 2 * n do
  shared[#shared + 1] = ARGV[i]
end
for i = 7, 6 + count do
  local id = KEYS[i]
  if staged then
    redis.call('RENAME', KEYS[i + count], id)
    redis.call('PERSIST', id)
    redis.call('HSET', id, unpack(shared))
  else
    redis.call('HSET', id, 'param_payload', ARGV[7 + 2 * n + i - 7], unpack(shared))
  end
  redis.call('LPUSH', q, id)
  redis.call('LPUSH', KEYS[6], id)
  redis.call('PUBLISH', ARGV[1], id)
end
faas_ring_join(tenant)
redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[2]) - 1)
redis.call('HINCRBY', KEYS[5], 'submitted', count)
redis.call('HINCRBY', KEYS[5], 'queued', count)
return {count, depth + count}
