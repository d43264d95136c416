-- dispatch.lua: withdraw expired tasks, then pick, pop and lease one task if the window allows.
-- KEYS[1] domain base; ARGV[1] policy preamble.
-- ARGV[2] numbers: now (s), window (-1: none), lease timeout (s).
-- Returns, packed in one bulk string (see packed() in _core.lua): lease deadline|'',
-- [id, key, enqueued_at, cost, deadline, payload], expired tasks as 6 fields each.
-- Touches: tasks, q:<key>, k:<key>, active, deadlines, leases, meta, the policy's keys.
local n = words(arg(1))
return dispatch_reply(tonumber(n[1]), n[1], tonumber(n[2]), tonumber(n[3]))
