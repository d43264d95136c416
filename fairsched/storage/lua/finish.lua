-- finish.lua: complete one task, then dispatch in its domain, atomically.
-- KEYS[1] domain base; ARGV[1] policy preamble.
-- ARGV[2] task id; ARGV[3] numbers: runtime (s)|'-', now (s), window (-1: none),
-- lease timeout (s).
-- Returns -1 when the id is neither leased nor queued here, else the packed dispatch reply.
-- Touches: as complete.lua and dispatch.lua.
local n = words(arg(2))
local now = tonumber(n[2])
if not complete(arg(1), optnum(n[1]), now) then return -1 end
return dispatch_reply(now, n[2], tonumber(n[3]), tonumber(n[4]))
