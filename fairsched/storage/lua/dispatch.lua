-- dispatch.lua: withdraw expired tasks, then pick, pop and lease one task if the window allows.
-- KEYS[1] domain base; ARGV[1] policy preamble.
-- ARGV[2] now (s); ARGV[3] window (-1: none); ARGV[4] lease timeout (s).
-- Returns {1|0, lease deadline|'', [id, key, enqueued_at, cost, deadline, payload],
--          expired tasks as 6 fields each}.
-- Touches: tasks, q:<key>, k:<key>, active, deadlines, leases, meta, the policy's keys.
return dispatch_reply(tonumber(arg(1)), arg(1), tonumber(arg(2)), tonumber(arg(3)))
