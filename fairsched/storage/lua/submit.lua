-- submit.lua: enqueue then dispatch, atomically; the call's op token is the task's id.
-- KEYS[1] domain base; ARGV[1] policy preamble, ARGV[2] replay flag (see _core.lua).
-- arg(1..3) id, key, payload; arg(4) numbers: enqueued_at (s), cost|'-', deadline (s)|'-',
-- now (s), window (-1: none), lease timeout (s).
-- Returns the packed dispatch reply (see dispatch.lua), or an error reply NOINIT or DUPLICATE
-- before any write. A repeated call whose first run stored the task returns what that run
-- leased (the same task again, or none).
if not registered() then return redis.error_reply(NOINIT) end
local n = words(arg(4))
local t = new_task(1, n[1], n[2], n[3])
if not t then
  if REPLAY then return replayed(arg(1)) end
  return redis.error_reply('DUPLICATE task id is already queued or leased')
end
local now = tonumber(n[4])
insert(t, now, false)
wake()
return dispatch_reply(now, n[4], tonumber(n[5]), tonumber(n[6]), arg(1))
