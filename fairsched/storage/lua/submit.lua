-- submit.lua: enqueue then dispatch, atomically.
-- KEYS[1] domain base; ARGV[1] policy preamble.
-- ARGV[2..7] task as in enqueue.lua; ARGV[8] now (s); ARGV[9] window (-1: none);
-- ARGV[10] lease timeout (s).
-- Returns the dispatch reply (see dispatch.lua) or the DUPLICATE error before any write.
local t = new_task(1)
if not t then return redis.error_reply('DUPLICATE task id is already queued or leased') end
local now = tonumber(arg(7))
insert(t, now, false)
return dispatch_reply(now, arg(7), tonumber(arg(8)), tonumber(arg(9)))
