-- requeue.lua: end the lease of one task now and return it to the head of its key's backlog
-- (its publish failed for a reason that may pass, e.g. the broker is down).
-- KEYS[1] domain base; ARGV[1] policy preamble, ARGV[2] replay flag; arg(1) task id;
-- arg(2) now (s).
-- Returns the task's 6 fields, or {} when it is not leased here.
-- Touches: as reclaim.lua, for one task.
local t = load(arg(1))
if not t or t.lm == '' then return {} end
requeue(t, tonumber(arg(2)))
return reply(t, {})
