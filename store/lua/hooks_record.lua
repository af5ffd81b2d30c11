-- Records the outcome of one webhook delivery attempt claimed with
-- hooks_claim.lua, only for the latest claim (its attempt number) of a
-- task whose callback is still pending:
--   delivered      the receiver answered 2xx: the entry leaves the hooks
--                  set, callback_state becomes 'delivered'
--   retry          it did not: the entry is due again at ARGV[5],
--                  callback_error and callback_next_at say why and when
--   undeliverable  it did not and the deliverer gives up: the entry
--                  leaves, callback_state becomes 'undeliverable'
-- and counts it in the stats hash: webhook:delivered, webhook:failed (every
-- attempt that did not succeed, the last one of an undeliverable webhook
-- too) and webhook:undeliverable.
-- KEYS[1] the hooks set, KEYS[2] stats, KEYS[3] the task hash
-- ARGV[1] task id, ARGV[2] attempt, ARGV[3] outcome, ARGV[4] now (unix ms),
-- ARGV[5] next due (unix ms, retry only), ARGV[6] error text ('' none)
-- Returns 1 if recorded, 0 for a stale claim (claimed again since, or no
-- longer pending) or a task that is gone.
local h = redis.call('HMGET', KEYS[3], 'callback_attempts', 'callback_state')
if not h[2] then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
if h[1] ~= ARGV[2] or h[2] ~= 'pending' or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local outcome = ARGV[3]
if outcome == 'delivered' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[3], 'callback_state', 'delivered', 'callback_at', ARGV[4])
  redis.call('HDEL', KEYS[3], 'callback_next_at')
  redis.call('HINCRBY', KEYS[2], 'webhook:delivered', 1)
elseif outcome == 'retry' then
  redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
  redis.call('HSET', KEYS[3], 'callback_error', ARGV[6], 'callback_at', ARGV[4], 'callback_next_at', ARGV[5])
  redis.call('HINCRBY', KEYS[2], 'webhook:failed', 1)
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[3], 'callback_state', 'undeliverable', 'callback_error', ARGV[6], 'callback_at', ARGV[4])
  redis.call('HDEL', KEYS[3], 'callback_next_at')
  redis.call('HINCRBY', KEYS[2], 'webhook:failed', 1)
  redis.call('HINCRBY', KEYS[2], 'webhook:undeliverable', 1)
end
return 1
