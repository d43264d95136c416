-- enqueue.lua: append one task to the tail of its key's backlog.
-- KEYS[1] domain base; ARGV[1] policy preamble (see _core.lua).
-- ARGV[2..7] id, key, enqueued_at (s), cost|'', deadline (s)|'', payload; ARGV[8] now (s).
-- Returns 1, or an error reply "DUPLICATE" when the id is queued or leased in this domain.
-- Touches: tasks, q:<key>, k:<key>, active, known, deadlines, meta, the policy's keys.
local t = new_task(1)
if not t then return redis.error_reply('DUPLICATE task id is already queued or leased') end
insert(t, tonumber(arg(7)), false)
return 1
