-- faas_complete(task, leases, o) records the outcome of a task, only for
-- the current lease holder (scripts.go makes the complete script of it,
-- and the complete-and-claim one with claim.lua).
-- KEYS[1..4] tenancy (lib.lua), task: the task hash, leases: the lease set
-- ARGV[o] task id, ARGV[o+1] fence, ARGV[o+2] done channel, ARGV[o+3]
-- result TTL (ms, 0: keep), ARGV[o+4] '1' if tenants can be parked (a
-- running cap is set), ARGV[o+5] number of field/value strings that follow,
-- then those (status, result, finished_at, ...)
-- The task is rewritten with only what a final task keeps (lib.lua,
-- faas_finish).
-- Returns {created_at, started_at} if recorded, 0 for a stale or repeated
-- result.
local function faas_complete(task, leases, o)
  local h = faas_read(task)
  if h.status ~= 'RUNNING' or h.fence ~= ARGV[o + 1] or redis.call('ZREM', leases, ARGV[o]) == 0 then
    return 0
  end
  faas_lease_dropped(h.owner, ARGV[o + 4] == '1')
  local first = o + 6
  faas_finish(task, h, {unpack(ARGV, first, first + tonumber(ARGV[o + 5]) - 1)}, ARGV[o + 3], ARGV[o + 2])
  return {h.created_at or '', h.started_at or ''}
end
