-- dispatch.lua: withdraw expired tasks, then pick, pop and lease one task if the window allows.
-- KEYS[1] domain base; ARGV[1] policy preamble, ARGV[2] replay flag (see _core.lua).
-- arg(1) numbers: now (s), window (-1: none), lease timeout (s); arg(2) op token, unique per
-- call (a repeated call sends the same one).
-- Returns, packed in one bulk string (see packed() in _core.lua): lease deadline|'',
-- [id, key, enqueued_at, cost, deadline, payload], expired tasks as 6 fields each. When the
-- op token already leased a task that is still leased, that task, and nothing else happens.
-- Touches: tasks, q:<key>, k:<key>, active, deadlines, leases, meta, ops, the policy's keys.
local op = arg(2)
-- Checked on every call, not only on replays: a first call delayed behind its own repeat
-- (a server that stalled past the client's timeout) must not lease a second task.
if redis.call('HEXISTS', K_OPS, op) == 1 then return replayed(op) end
local n = words(arg(1))
return dispatch_reply(tonumber(n[1]), n[1], tonumber(n[2]), tonumber(n[3]), op)
