-- enqueue.lua: append one task to the tail of its key's backlog.
-- KEYS[1] domain base; ARGV[1] policy preamble, ARGV[2] replay flag (see _core.lua).
-- arg(1..3) id, key, payload; arg(4) numbers: enqueued_at (s), cost|'-', deadline (s)|'-',
-- now (s).
-- Returns 1; an error reply NOINIT when the domain is not registered, or DUPLICATE when the
-- id is queued or leased here (a repeated call whose first run stored the task returns 1).
-- Touches: tasks, q:<key>, k:<key>, active, known, deadlines, meta, the policy's keys.
if not registered() then return redis.error_reply(NOINIT) end
local n = words(arg(4))
local t = new_task(1, n[1], n[2], n[3])
if not t then
  if REPLAY then return 1 end
  return redis.error_reply('DUPLICATE task id is already queued or leased')
end
insert(t, tonumber(n[4]), false)
wake()
return 1
