-- _engine.lua: the machinery every verb shares: insert (enqueue at the tail, requeue at the
-- head), withdraw, expire, dispatch and complete; needs P (the policy fragment).

-- Put record `t` (not stored as queued) into its key's backlog.
local function insert(t, now, front)
  local key = t.key
  local known = redis.call('HMGET', kk(key), 'fs', 'n')
  local fs = first_seen(key, known[1])
  local n = tonumber(known[2] or '0')
  t.seq = next_seq()
  if t.dl and (t.dm == '' or not redis.call('ZSCORE', K_DEADLINES, t.dm)) then
    -- A requeued task whose deadline entry survives keeps it (and so its expiry order).
    t.dm = pad(t.seq) .. t.id
    redis.call('ZADD', K_DEADLINES, fmt(t.dl), t.dm)
  end
  t.lm = ''
  t.by = ''
  save(t)
  local q = kq(key)
  if n == 0 then
    redis.call('RPUSH', q, entry(t))
    redis.call('HSET', kk(key), 'n', 1)
    redis.call('PERSIST', kk(key))
    redis.call('ZADD', K_ACTIVE, fs, key)
    P.activate(key, now)
  else
    redis.call('HINCRBY', kk(key), 'n', 1)
    if front then
      redis.call('LPUSH', q, entry(t))
      P.head_change(key, now)
    else
      redis.call('RPUSH', q, entry(t))
    end
  end
end

-- Remove queued record `t`: O(1) unless it is the head (dead entries are dropped lazily).
local function withdraw(t, now)
  local key = t.key
  redis.call('HDEL', K_TASKS, t.id)
  if t.dm ~= '' then redis.call('ZREM', K_DEADLINES, t.dm) end
  local q = kq(key)
  if redis.call('LINDEX', q, 0) ~= entry(t) then
    redis.call('HINCRBY', kk(key), 'n', -1)
    return
  end
  redis.call('LPOP', q)
  if drop_dead_heads(key) then
    redis.call('HINCRBY', kk(key), 'n', -1)
    P.head_change(key, now)
  else
    idle(key)
    P.deactivate(key, now)
  end
end

local function expire(now, out)
  local due = redis.call('ZRANGEBYSCORE', K_DEADLINES, '-inf', '(' .. fmt(now))
  local n = 0
  for _, m in ipairs(due) do
    redis.call('ZREM', K_DEADLINES, m)
    local t = load(string.sub(m, 16))
    -- A leased task's entry is dropped; a requeue adds a fresh one.
    if t and t.lm == '' and t.dm == m then
      withdraw(t, now)
      record(t, 'expired', fmt(now), '', '', '')
      reply(t, out)
      n = n + 1
    end
  end
  return n
end

-- Pick, pop and lease one task for call `op`; nil when the window is full or nothing is
-- backlogged. The pop is the first write: under maxmemory with noeviction Redis refuses only
-- a script's first write when it grows memory, so a dispatch still runs when memory is full.
local function dispatch_one(now, now_s, window, lease_timeout, op)
  if window >= 0 and redis.call('ZCARD', K_LEASES) >= window then return nil end
  local key = P.pick(now)
  if not key then return nil end
  local q = kq(key)
  local t = live(redis.call('LPOP', q))
  if not t then return redis.error_reply('fairsched: dead head in backlog of ' .. key) end
  local deadline = now + lease_timeout
  t.lm = pad(next_seq()) .. t.id
  t.by = op
  t.dt = now
  redis.call('ZADD', K_LEASES, fmt(deadline), t.lm)
  save(t)
  redis.call('HSET', K_OPS, op, t.lm)
  local left = redis.call('HINCRBY', kk(key), 'n', -1)
  local still
  if redis.call('LLEN', q) == left then
    still = left > 0  -- no withdrawn entries: the new head is live, no need to read it
  else
    still = drop_dead_heads(key)
  end
  -- The policy adds its per-key fields, so k:<key> is written once per dispatch.
  local fields = {'used', now_s}
  P.dispatched(key, t, now, still, fields)
  redis.call('HSET', kk(key), unpack(fields))
  if not still then idle(key) end
  return t, deadline
end

-- A packed dispatch reply: lease deadline|'', [task 6 fields], expired tasks 6 fields each.
local function packed_dispatch(t, deadline, expired)
  local out
  if t then out = reply(t, {fmt(deadline)}) else out = {''} end
  for _, v in ipairs(expired) do out[#out + 1] = v end
  return packed(out)
end

-- The reply to a repeated call whose first run leased a task: that task again (its publisher
-- never saw it); an empty dispatch when the first run leased nothing.
local function replayed(op)
  local t, deadline = leased_by(op)
  return packed_dispatch(t, deadline, {})
end

-- dispatch reply, packed: see packed_dispatch.
local function dispatch_reply(now, now_s, window, lease_timeout, op)
  local expired = {}
  expire(now, expired)
  local t, deadline = dispatch_one(now, now_s, window, lease_timeout, op)
  if type(t) == 'table' and t.err then return t end
  if t then keep_awake() end
  return packed_dispatch(t, deadline, expired)
end

-- Release task `id`: end its lease (feeding runtime to the policy) or, if it was requeued
-- after a reclaim, withdraw it, and record its outcome. Returns the record or nil. The
-- freeing writes come first, so that a full Redis (maxmemory, noeviction) still lets workers
-- finish tasks and free memory (Redis refuses only a script's first write when memory is
-- full). `i`: the index of the caller's three trace arguments (outcome, started (s)|'',
-- worker); `now_s`, `runtime_s`: now and the runtime as the caller wrote them.
local function complete(id, runtime, now, i, now_s, runtime_s)
  local t = load(id)
  if not t then return nil end
  if t.lm == '' then
    withdraw(t, now)
  else
    redis.call('HDEL', K_TASKS, id)
    redis.call('ZREM', K_LEASES, t.lm)
    if t.dm ~= '' then redis.call('ZREM', K_DEADLINES, t.dm) end
    forget_op(t)
    if runtime then
      P.complete(t, runtime)
      touch_idle(t.key)
    end
  end
  record(t, arg(i), now_s, runtime and runtime_s or '', arg(i + 1), arg(i + 2))
  return t
end

-- Return leased record `t` to the head of its key's backlog (its lease is over).
local function requeue(t, now)
  redis.call('ZREM', K_LEASES, t.lm)
  forget_op(t)
  insert(t, now, true)
  wake()
end

-- A task from arg(i), arg(i + 1), arg(i + 2) (id, key, payload) and three numbers (enqueued_at,
-- cost|'-', deadline|'-'); nil when the id is already queued or leased here.
local function new_task(i, enq, cost, dl)
  local t = {id = arg(i), key = arg(i + 1), enq = tonumber(enq), cost = optnum(cost),
             dl = optnum(dl), dm = '', lm = '', payload = arg(i + 2), seq = 0, by = '',
             dt = false}
  if redis.call('HEXISTS', K_TASKS, t.id) == 1 then return nil end
  return t
end
