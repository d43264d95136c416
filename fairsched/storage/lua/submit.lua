-- submit.lua: enqueue then dispatch, atomically.
-- KEYS[1] domain base; ARGV[1] policy preamble.
-- ARGV[2..4] id, key, payload; ARGV[5] numbers: enqueued_at (s), cost|'-', deadline (s)|'-',
-- now (s), window (-1: none), lease timeout (s).
-- Returns the packed dispatch reply (see dispatch.lua) or the DUPLICATE error before any write.
local n = words(arg(4))
local t = new_task(1, n[1], n[2], n[3])
if not t then return redis.error_reply('DUPLICATE task id is already queued or leased') end
local now = tonumber(n[4])
insert(t, now, false)
return dispatch_reply(now, n[4], tonumber(n[5]), tonumber(n[6]))
