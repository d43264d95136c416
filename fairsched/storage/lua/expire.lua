-- expire.lua: withdraw every queued task whose deadline is before now.
-- KEYS[1] domain base; ARGV[1] policy preamble, ARGV[2] replay flag; arg(1) now (s).
-- Returns the expired tasks, 6 fields each, in (deadline, insertion) order.
-- Touches: deadlines, tasks, q:<key>, k:<key>, active, the policy's keys.
local out = {}
expire(tonumber(arg(1)), out)
return out
