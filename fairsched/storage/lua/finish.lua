-- finish.lua: complete one task, then dispatch in its domain, atomically; the call's op token
-- is the finished task's id.
-- KEYS[1] domain base; ARGV[1] policy preamble, ARGV[2] replay flag (see _core.lua).
-- arg(1) task id; arg(2) numbers: runtime (s)|'-', now (s), window (-1: none),
-- lease timeout (s); arg(3..5) for the trace: outcome, started (s)|'', worker.
-- Returns -1 when the id is neither leased nor queued here, else the packed dispatch reply.
-- A repeated call whose first run completed the task returns what that run leased.
-- Touches: as complete.lua and dispatch.lua.
local n = words(arg(2))
local now = tonumber(n[2])
if not complete(arg(1), optnum(n[1]), now, 3, n[2], n[1]) then
  if REPLAY then return replayed(arg(1)) end
  return -1
end
return dispatch_reply(now, n[2], tonumber(n[3]), tonumber(n[4]), arg(1))
