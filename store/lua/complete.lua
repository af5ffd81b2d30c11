-- faas_complete(task, leases, stats, o) records the outcome of a task,
-- only for the current lease holder (scripts.go makes the complete script
-- of it, and the complete-and-claim one with claim.lua).
-- KEYS[1..4] tenancy (lib.lua), task: the task hash, leases: the lease set,
-- stats: the stats hash
-- ARGV[o] task id, ARGV[o+1] fence, ARGV[o+2] done channel, ARGV[o+3]
-- result TTL (ms, 0: keep), ARGV[o+4] '1' if tenants can be parked (a
-- running cap is set), ARGV[o+5] number of field/value strings that follow,
-- then those (status, result, finished_at, ...), then the final status,
-- its error kind ('' none) and now (unix ms)
-- The task is counted and rewritten with only what a final task keeps
-- (lib.lua, faas_finish).
-- Returns 1 if recorded, 0 for a stale or repeated result.
local function faas_complete(task, leases, stats, o)
  local h = faas_read(task)
  if h.status ~= 'RUNNING' or h.fence ~= ARGV[o + 1] or redis.call('ZREM', leases, ARGV[o]) == 0 then
    return 0
  end
  faas_lease_dropped(h.owner, ARGV[o + 4] == '1')
  local first, last = o + 6, o + 5 + tonumber(ARGV[o + 5])
  faas_finish(task, h, {unpack(ARGV, first, last)}, ARGV[o + 3], ARGV[o + 2],
    {stats = stats, status = ARGV[last + 1], kind = ARGV[last + 2], now = ARGV[last + 3]})
  return 1
end
