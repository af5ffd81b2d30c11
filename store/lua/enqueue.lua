-- Creates QUEUED tasks of one tenant, makes them runnable in order and
-- announces them: all of them or none, if any id is taken or the tenant's
-- queue would grow past its cap.
-- KEYS[1..4] tenancy (lib.lua), KEYS[5] stats, KEYS[6] the tenant's recent
-- list, KEYS[7..8] the scheduled set and its counts (lib.lua,
-- faas_schedule), KEYS[9] the tenant's queue, KEYS[10..9+c] task hashes (the
-- key is the task id), and when the
-- payloads were staged, KEYS[10+c..9+2c] their staged hashes in the same order
-- (holding fn_payload and param_payload; renamed to the task hashes here,
-- so that large payloads never pass through Lua)
-- ARGV[1] new-task channel, ARGV[2] length of the recent list,
-- ARGV[3] tenant ('' for the default one), ARGV[4] most ids the tenant's
-- queue may hold (0: no cap), ARGV[5] the largest payloads (function and
-- arguments, bytes) a claim reads without checking their size first (a
-- larger task's queue entry is '~' .. id), ARGV[6] n, ARGV[7..6+2n]
-- field/value pairs every task has, ARGV[7+2n] 1 if staged, else 0 and
-- ARGV[8+2n..] the param_payload of each task, in KEYS order
-- (when not staged), and last, ARGV[#ARGV], the scheduled channel
-- A shared field run_at (unix ms) delays the tasks: they go to the
-- scheduled set instead of the queue, due then (promote.lua moves them),
-- and their due time is published on the scheduled channel instead of
-- their ids on the new-task channel (which means "runnable now"). A queue
-- cap counts the tenant's scheduled tasks too.
-- Returns {created, queue length}: created is the number of tasks created,
-- 0 if an id was taken, -1 if the queue would pass its cap, -2 if a staged
-- hash expired; the length is the tenant's queue's afterwards (before, if
-- nothing was created; 0 when unknown). Staged hashes are deleted when
-- nothing is created.
-- The recent list is trimmed once it passes its length by a tenth, not at
-- every push (readers take its head).
local tenant = ARGV[3]
local q = KEYS[9]
local n = tonumber(ARGV[6])
local staged = ARGV[7 + 2 * n] == '1'
local count = #KEYS - 9
if staged then
  count = math.floor(count / 2)
end
local ids = {unpack(KEYS, 10, 9 + count)}
local function refuse(code, depth)
  if staged then
    redis.call('DEL', unpack(KEYS, 10 + count, #KEYS))
  end
  return {code, depth}
end
local cap = tonumber(ARGV[4])
if cap > 0 then
  local depth = redis.call('LLEN', q) + (tonumber(redis.call('HGET', KEYS[8], tenant)) or 0)
  if depth + count > cap then
    return refuse(-1, depth)
  end
end
if redis.call('EXISTS', unpack(ids)) > 0 then
  return refuse(0, 0)
end
if staged and redis.call('EXISTS', unpack(KEYS, 10 + count, #KEYS)) < count then
  -- expired before the script ran: the caller may retry
  return refuse(-2, 0)
end
local shared = {unpack(ARGV, 7, 6 + 2 * n)}
local room = tonumber(ARGV[5])
local run_at
for i = 1, #shared, 2 do
  if shared[i] == 'fn_payload' then
    room = room - #shared[i + 1]
  elseif shared[i] == 'run_at' then
    run_at = shared[i + 1]
  end
end
local sched_channel = ARGV[#ARGV]
local entries = {}
for i, id in ipairs(ids) do
  if staged then
    redis.call('RENAME', KEYS[9 + count + i], id)
    redis.call('PERSIST', id)
    redis.call('HSET', id, unpack(shared))
    entries[i] = '~' .. id
  else
    local param = ARGV[7 + 2 * n + i]
    redis.call('HSET', id, 'param_payload', param, unpack(shared))
    if #param > room then
      entries[i] = '~' .. id
    else
      entries[i] = id
    end
  end
end
local depth = 0
if run_at then
  for _, id in ipairs(ids) do
    redis.call('ZADD', KEYS[7], run_at, id)
  end
  redis.call('HINCRBY', KEYS[8], tenant, count)
  redis.call('PUBLISH', sched_channel, run_at)
else
  depth = redis.call('LPUSH', q, unpack(entries))
  if depth == count then
    faas_ring_join(tenant)
  end
end
local keep = tonumber(ARGV[2])
if redis.call('LPUSH', KEYS[6], unpack(ids)) > keep + math.ceil(keep / 10) then
  redis.call('LTRIM', KEYS[6], 0, keep - 1)
end
redis.call('HINCRBY', KEYS[5], 'submitted', count)
if not run_at then
  for _, id in ipairs(ids) do
    redis.call('PUBLISH', ARGV[1], id)
  end
end
return {count, depth}
