-- complete.lua: end a task's lease, feeding its run time to the policy; a task that was
-- reclaimed and requeued is withdrawn instead (it did run).
-- KEYS[1] domain base; ARGV[1] policy preamble.
-- ARGV[2] task id; ARGV[3] runtime (s)|''; ARGV[4] now (s).
-- Returns the task's 6 fields, or {} when the id is neither leased nor queued here.
-- Touches: tasks, leases, deadlines, k:<key> (estimate), and for a queued id as revoke.lua.
local t = complete(arg(1), optnum(arg(2)), tonumber(arg(3)))
if not t then return {} end
return reply(t, {})
