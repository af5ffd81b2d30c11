-- Counts the ids waiting in every tenant's queue: the default tenant's and
-- those of the tenants in the ring or parked (a tenant with queued work is
-- in one of them). O(tenants with queued work).
-- KEYS[1..4] tenancy (lib.lua)
-- Returns the sum.
local total = redis.call('LLEN', KEYS[1])
local seen = {}
seen[''] = true
for _, key in ipairs({KEYS[2], KEYS[3]}) do
  for _, tenant in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if not seen[tenant] then
      seen[tenant] = true
      total = total + redis.call('LLEN', faas_queue(tenant))
    end
  end
end
return total
