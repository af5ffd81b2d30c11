-- Lists the tenants with queued work and their queue lengths: the default
-- tenant and those in the ring or parked (a tenant with queued work is in
-- one of them). O(tenants with queued work), as queue_depth.lua.
-- KEYS[1..4] tenancy (lib.lua)
-- Returns {tenant, length, tenant, length, ...} for the non-empty queues.
local out = {}
local seen = {}
seen[''] = true
local n = redis.call('LLEN', KEYS[1])
if n > 0 then
  out[#out + 1] = ''
  out[#out + 1] = n
end
for _, key in ipairs({KEYS[2], KEYS[3]}) do
  for _, tenant in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if not seen[tenant] then
      seen[tenant] = true
      n = redis.call('LLEN', faas_queue(tenant))
      if n > 0 then
        out[#out + 1] = tenant
        out[#out + 1] = n
      end
    end
  end
end
return out
