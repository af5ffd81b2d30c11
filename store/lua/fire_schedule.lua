-- Fires one look at a due schedule, as the caller planned it
-- (schedule.Spec.Plan), if nobody else did: a compare-and-set on the
-- schedule's score in the active set. Only the caller that finds the score
-- it read (the tick it planned from) creates the tick's tasks and moves the
-- score to the next tick, in this one script; every other caller, however
-- many run at once, finds another score (or none: paused or deleted) and
-- does nothing. Task ids are derived from the schedule id and the tick
-- (store.scheduleTaskID), and a tick whose task exists is not fired again.
-- KEYS[1..4] tenancy (lib.lua), KEYS[5] stats, KEYS[6] the active
-- schedules, KEYS[7] the schedule hash, KEYS[8] the tenant's recent list,
-- KEYS[9] the scheduled-task counts (what a queue cap counts besides the
-- queue), KEYS[10] the tenant's queue, KEYS[11] the function hash,
-- KEYS[12..] the task hashes to create (0, 1 or 2)
-- ARGV[1] schedule id, ARGV[2] the score read (unix ms), ARGV[3] the next
-- tick (unix ms; -1: none, the schedule is removed from the active set),
-- ARGV[4] now (unix ms), ARGV[5] ticks missed, ARGV[6] the tenant's queue
-- cap (0: none), ARGV[7] length of the recent list, ARGV[8] the new-task
-- channel, ARGV[9] the schedule's owner and ARGV[10] its function id as the
-- caller read them (its queue and function keys are those), ARGV[11..]
-- each task's tick (unix ms), in KEYS order
-- A task is the one execute_function makes for the schedule's function and
-- arguments (the function's payload and settings as they are now: timeout,
-- memory cap, environment, callback URL), QUEUED at the producer
-- end of the tenant's queue. A task the tenant's queue cap refuses, or
-- whose function is gone, is not made: the tick is counted as skipped with
-- the reason (last_skip), and the schedule goes on.
-- The stats hash (KEYS[5]) counts, cluster-wide, in this same script:
-- schedule_ticks:fired (ticks that made a task, a run_once catch-up
-- included), schedule_ticks:missed (ARGV[5]) and schedule_ticks:skipped,
-- the sums of every schedule's tasks_created, ticks_missed and
-- ticks_skipped (faas_schedule_ticks_total).
-- Returns {tasks created, ticks skipped}, or {-1, 0} if the score was not
-- the one read, or {-2, 0} if the owner or function was not the one read
-- (the caller reads again).
local id = ARGV[1]
local cur = redis.call('ZSCORE', KEYS[6], id)
if not cur or tonumber(cur) ~= tonumber(ARGV[2]) then
  return {-1, 0}
end
local s = redis.call('HMGET', KEYS[7], 'owner', 'function_id', 'param_payload', 'want_json', 'retry')
if not s[2] then
  redis.call('ZREM', KEYS[6], id)
  return {-1, 0}
end
if (s[1] or '') ~= ARGV[9] or s[2] ~= ARGV[10] then
  return {-2, 0}
end
if tonumber(ARGV[3]) < 0 then
  redis.call('ZREM', KEYS[6], id)
  redis.call('HDEL', KEYS[7], 'next_tick')
else
  redis.call('ZADD', KEYS[6], ARGV[3], id)
  redis.call('HSET', KEYS[7], 'next_tick', ARGV[3])
end
local now = ARGV[4]
if tonumber(ARGV[5]) > 0 then
  redis.call('HINCRBY', KEYS[7], 'ticks_missed', ARGV[5])
  redis.call('HINCRBY', KEYS[5], 'schedule_ticks:missed', ARGV[5])
end
local tenant = s[1] or ''
local q = KEYS[10]
local cap = tonumber(ARGV[6])
local f = redis.call('HMGET', KEYS[11], 'fn_name', 'fn_payload', 'fn_hash', 'isolation', 'bundle', 'owner', 'timeout_ms',
  'memory_bytes', 'env', 'secret_env', 'callback_url')
-- The function's settings, as Enqueue copies them to a task (store.go):
-- its timeout and memory cap, its variables and secrets as one sorted
-- array of NAME=value, its default completion webhook.
local settings = {}
for j, field in ipairs({'timeout_ms', 'memory_bytes'}) do
  if f[6 + j] and f[6 + j] ~= '' then
    settings[#settings + 1] = field
    settings[#settings + 1] = f[6 + j]
  end
end
local env = {}
for _, src in ipairs({f[9], f[10]}) do
  if src and src ~= '' then
    for k, v in pairs(cjson.decode(src)) do
      env[#env + 1] = k .. '=' .. v
    end
  end
end
if #env > 0 then
  table.sort(env)
  settings[#settings + 1] = 'env'
  settings[#settings + 1] = cjson.encode(env)
end
if f[11] and f[11] ~= '' then
  settings[#settings + 1] = 'callback_url'
  settings[#settings + 1] = f[11]
end
local created, skipped = 0, 0
local function skip(tick, reason)
  skipped = skipped + 1
  redis.call('HINCRBY', KEYS[7], 'ticks_skipped', 1)
  redis.call('HSET', KEYS[7], 'last_skip', reason, 'last_skip_tick', tick, 'last_skip_at', now)
end
for i = 12, #KEYS do
  local tid = KEYS[i]
  local tick = ARGV[i - 1]
  redis.call('HSET', KEYS[7], 'last_tick', tick)
  if redis.call('EXISTS', tid) == 1 then
    -- fired already (cannot happen past the compare-and-set; kept as a guard)
  elseif not f[1] or not f[2] or (f[6] or '') ~= tenant then
    skip(tick, 'the function ' .. s[2] .. ' is gone')
  elseif cap > 0 and redis.call('LLEN', q) + (tonumber(redis.call('HGET', KEYS[9], tenant)) or 0) + 1 > cap then
    skip(tick, 'queue full: the tenant has ' .. cap .. ' tasks queued, its limit')
  else
    local fields = {'status', 'QUEUED', 'result', '', 'function_id', s[2], 'fn_hash', f[3] or '',
      'isolation', f[4] or 'warm', 'created_at', now, 'attempts', 0, 'fence', 0,
      'fn_payload', f[2], 'param_payload', s[3] or ''}
    if s[4] == '1' then
      fields[#fields + 1] = 'want_json'
      fields[#fields + 1] = '1'
    end
    if tenant ~= '' then
      fields[#fields + 1] = 'owner'
      fields[#fields + 1] = tenant
    end
    if f[5] and f[5] ~= '' then
      fields[#fields + 1] = 'bundle'
      fields[#fields + 1] = f[5]
    end
    if s[5] and s[5] ~= '' then
      fields[#fields + 1] = 'retry'
      fields[#fields + 1] = s[5]
    end
    for _, v in ipairs(settings) do
      fields[#fields + 1] = v
    end
    redis.call('HSET', tid, unpack(fields))
    -- '~': the claim checks the payloads' size before reading them
    if redis.call('LPUSH', q, '~' .. tid) == 1 then
      faas_ring_join(tenant)
    end
    local keep = tonumber(ARGV[7])
    if redis.call('LPUSH', KEYS[8], tid) > keep + math.ceil(keep / 10) then
      redis.call('LTRIM', KEYS[8], 0, keep - 1)
    end
    redis.call('HINCRBY', KEYS[5], 'submitted', 1)
    redis.call('HINCRBY', KEYS[7], 'tasks_created', 1)
    redis.call('HSET', KEYS[7], 'last_task_id', tid)
    redis.call('PUBLISH', ARGV[8], tid)
    created = created + 1
  end
end
redis.call('HSET', KEYS[7], 'last_fired_at', now)
if created > 0 then
  redis.call('HINCRBY', KEYS[5], 'schedule_ticks:fired', created)
end
if skipped > 0 then
  redis.call('HINCRBY', KEYS[5], 'schedule_ticks:skipped', skipped)
end
return {created, skipped}
