-- complete.lua: end a task's lease, feeding its run time to the policy; a task that was
-- reclaimed and requeued is withdrawn instead (it did run).
-- KEYS[1] domain base; ARGV[1] policy preamble, ARGV[2] replay flag (see _core.lua).
-- arg(1) task id; arg(2) runtime (s)|''; arg(3) now (s); arg(4..6) for the trace: outcome,
-- started (s)|'', worker.
-- Returns the task's 6 fields, or {} when the id is neither leased nor queued here (also
-- for a repeated call whose first run completed it).
-- Touches: tasks, leases, deadlines, ops, k:<key> (estimate), trace, and for a queued id as
-- revoke.lua.
local t = complete(arg(1), optnum(arg(2)), tonumber(arg(3)), 4, arg(3), arg(2))
if not t then return {} end
return reply(t, {})
