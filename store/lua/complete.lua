-- Records the outcome of a task, only for the current lease holder.
-- KEYS[1..4] tenancy (lib.lua), KEYS[5] task hash, KEYS[6] leases
-- ARGV[1] task id, ARGV[2] fence, ARGV[3] done channel, ARGV[4] result TTL
-- (ms, 0: keep), ARGV[5] '1' if tenants can be parked (a running cap is
-- set), ARGV[6..] field/value pairs (status, result, finished_at, ...)
-- The task is rewritten with only what a final task keeps (lib.lua,
-- faas_finish).
-- Returns {created_at, started_at} if recorded, 0 for a stale or repeated
-- result.
local h = faas_read(KEYS[5])
if h.status ~= 'RUNNING' or h.fence ~= ARGV[2] or redis.call('ZREM', KEYS[6], ARGV[1]) == 0 then
  return 0
end
faas_lease_dropped(h.owner, ARGV[5] == '1')
faas_finish(KEYS[5], h, {unpack(ARGV, 6)}, ARGV[4], ARGV[3])
return {h.created_at or '', h.started_at or ''}
