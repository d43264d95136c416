-- finish.lua: complete one task, then dispatch in its domain, atomically.
-- KEYS[1] domain base; ARGV[1..4] policy preamble.
-- ARGV[5] task id; ARGV[6] runtime (s)|''; ARGV[7] now (s); ARGV[8] window (-1: none);
-- ARGV[9] lease timeout (s).
-- Returns {-1} when the id is neither leased nor queued here, else the dispatch reply.
-- Touches: as complete.lua and dispatch.lua.
local now = tonumber(arg(3))
if not complete(arg(1), optnum(arg(2)), now) then return {-1} end
return dispatch_reply(now, arg(3), tonumber(arg(4)), tonumber(arg(5)))
