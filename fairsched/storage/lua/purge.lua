-- purge.lua: drop every queued task, lease and piece of policy state of the domain (weights
-- and the trace stay: settings and history; purged tasks are not recorded). O(keys + tasks);
-- not for hot paths. The policy's twin drops its own keys (P.purge).
-- KEYS[1] domain base; ARGV[1] policy preamble, ARGV[2] replay flag. Returns the number of
-- tasks dropped. The domain must be registered again (init.lua) before its next enqueue.
-- Touches: every key of the domain except weights and trace.
local dropped = redis.call('HLEN', K_TASKS)
for _, key in ipairs(redis.call('ZRANGE', K_KNOWN, 0, -1)) do
  redis.call('UNLINK', kq(key), kk(key))
end
redis.call('UNLINK', K_META, K_TASKS, K_ACTIVE, K_KNOWN, K_DEADLINES, K_LEASES, K_OPS)
P.purge()
return dropped
