-- reclaim.lua: return every task whose lease ran out (deadline < now) to the head of its
-- key's backlog. Requeued latest first, so the tasks of one key keep their old order.
-- KEYS[1] domain base; ARGV[1] policy preamble, ARGV[2] replay flag; arg(1) now (s).
-- Returns the reclaimed tasks, 6 fields each, in (lease deadline, dispatch) order.
-- Also puts a wake token back when a backlog waits with none (late binding): a worker that
-- popped the last token and lost its broker or died before dispatching took it with it.
-- Touches: leases, ops, tasks, q:<key>, k:<key>, active, known, deadlines, meta, the policy's
-- keys, the wake list.
local now = tonumber(arg(1))
local due = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', '(' .. fmt(now))) do
  local t = load(string.sub(m, 16))
  if t and t.lm == m then
    due[#due + 1] = t
  else
    redis.call('ZREM', K_LEASES, m)
  end
end
for i = #due, 1, -1 do requeue(due[i], now) end
keep_awake()
local out = {}
for _, t in ipairs(due) do reply(t, out) end
return out
