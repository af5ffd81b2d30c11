-- faas_complete(task, leases, stats, o, q) records the outcome of a task,
-- only for the current lease holder (scripts.go makes the complete script
-- of it, and the complete-and-claim one with claim.lua).
-- KEYS[1..4] tenancy (lib.lua), task: the task hash, leases: the lease set,
-- stats: the stats hash, q: the queue of the owner the caller names
-- ARGV[o] task id, ARGV[o+1] fence, ARGV[o+2] done channel, ARGV[o+3]
-- result TTL (ms, 0: keep), ARGV[o+4] '1' if tenants can be parked (a
-- running cap is set), ARGV[o+5] number of field/value strings that follow,
-- then those (status, result, finished_at, ...), then the final status,
-- its error kind ('' none), now (unix ms), the retry delay (ms; -1: no
-- retry), the scheduled channel, the new-task channel and the task's owner
-- as the lease holder knows it (a task of another owner is not its)
-- KEYS[8], KEYS[9]: the scheduled set and its per-tenant counts (lib.lua,
-- faas_schedule), KEYS[10] the hooks set (lib.lua, faas_finish)
-- The task is counted and rewritten with only what a final task keeps
-- (lib.lua, faas_finish). With a retry delay (the dispatcher applied the
-- task's retry policy), the task is not final: the attempt's error is
-- added to its errors, retried counts one more, and it is due again after
-- the delay (at once: the consumer end of its tenant's queue; later: the
-- scheduled set), still RUNNING.
-- Returns 1 if recorded as final, 2 if recorded and retried, 0 for a stale
-- or repeated result.
local function faas_complete(task, leases, stats, o, q)
  local h = faas_read(task)
  local first, last = o + 6, o + 5 + tonumber(ARGV[o + 5])
  if h.status ~= 'RUNNING' or h.fence ~= ARGV[o + 1] or (h.owner or '') ~= ARGV[last + 7] or
      redis.call('ZREM', leases, ARGV[o]) == 0 then
    return 0
  end
  faas_lease_dropped(h.owner, ARGV[o + 4] == '1', q)
  local delay = tonumber(ARGV[last + 4])
  if delay >= 0 then
    local err = '{}'
    for i = first, last, 2 do
      if ARGV[i] == 'error' then
        err = ARGV[i + 1]
      end
    end
    local now = tonumber(ARGV[last + 3])
    local entry = '{"attempt":' .. (tonumber(h.attempts) or 0) .. ',"at_ms":' .. now .. ',"error":' .. err .. '}'
    local errors = '[' .. entry .. ']'
    if h.errors and #h.errors > 2 then
      errors = string.sub(h.errors, 1, -2) .. ',' .. entry .. ']'
    end
    redis.call('HSET', task, 'errors', errors, 'retried', (tonumber(h.retried) or 0) + 1, 'next_attempt_at', now + delay)
    redis.call('HINCRBY', stats, 'retried', 1)
    if delay == 0 then
      faas_queue_next(q, h.owner, ARGV[o])
      redis.call('PUBLISH', ARGV[last + 6], ARGV[o])
    else
      faas_schedule(8, h.owner, ARGV[o], now + delay, ARGV[last + 5])
    end
    return 2
  end
  faas_finish(task, ARGV[o], h, {unpack(ARGV, first, last)}, ARGV[o + 3], ARGV[o + 2],
    {stats = stats, status = ARGV[last + 1], kind = ARGV[last + 2], now = ARGV[last + 3], hooks = KEYS[10]})
  return 1
end
