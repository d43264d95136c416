-- finish.lua: complete one task, then dispatch in its domain, atomically.
-- KEYS[1] domain base; ARGV[1] policy preamble.
-- ARGV[2] task id; ARGV[3] runtime (s)|''; ARGV[4] now (s); ARGV[5] window (-1: none);
-- ARGV[6] lease timeout (s).
-- Returns {-1} when the id is neither leased nor queued here, else the dispatch reply.
-- Touches: as complete.lua and dispatch.lua.
local now = tonumber(arg(3))
if not complete(arg(1), optnum(arg(2)), now) then return {-1} end
return dispatch_reply(now, arg(3), tonumber(arg(4)), tonumber(arg(5)))
