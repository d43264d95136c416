-- enqueue.lua: append one task to the tail of its key's backlog.
-- KEYS[1] domain base; ARGV[1] policy preamble (see _core.lua).
-- ARGV[2..4] id, key, payload; ARGV[5] numbers: enqueued_at (s), cost|'-', deadline (s)|'-',
-- now (s).
-- Returns 1, or an error reply "DUPLICATE" when the id is queued or leased in this domain.
-- Touches: tasks, q:<key>, k:<key>, active, known, deadlines, meta, the policy's keys.
local n = words(arg(4))
local t = new_task(1, n[1], n[2], n[3])
if not t then return redis.error_reply('DUPLICATE task id is already queued or leased') end
insert(t, tonumber(n[4]), false)
return 1
