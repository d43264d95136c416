-- _core.lua: shared by every script (assembled after the generated _keys block, which
-- defines B = KEYS[1], the K_<NAME> key names and kq/kk, and before a policy fragment, the
-- engine and a verb).
--
-- KEYS[1]  base = "<prefix>{<domain>}:"  every key below starts with it, so all keys of a
--          domain share one hash tag (one Cluster slot). Per-key names append the user's key
--          string, which arrives through ARGV or from stored data, never from script text.
-- KEYS[2]  optional: the domain's wake list (a broker queue list consumers block on, for
--          late-binding dispatch); scripts that add work to a backlog push WAKE_TOKEN there.
-- ARGV[1]  preamble: numbers separated by spaces (one argument, as each argument costs the
--          client an encoding step): key_ttl in ms (0: idle keys are kept forever), how many
--          task outcomes the domain's trace stream keeps (0: nothing is recorded), then the
--          policy's options, twin by twin (innermost first), each twin's in the order of its
--          `options`; the generated line before each twin's code reads them into its OPT table
-- ARGV[2]  '1' when the client repeats a call whose reply it lost (see `ops` below), else '0'
-- ARGV[3..] the verb's own arguments: arg(1) is ARGV[3], arg(2) is ARGV[4], and so on. The
--          header of each verb names its arguments as arg(i).
--
-- Key schema (all under base; the names come from DOMAIN_KEYS in _redis_scripts.py):
--   meta       hash   seq (insert/lease counter), fs (first-seen counter), lru, vtime,
--                     round, positions
--   tasks      hash   packed task id (pack_id in _redis_wire.py) -> msgpack(seq, key,
--                     enqueued_at, cost|false, deadline|false, deadline member|'',
--                     lease member|'', payload, op token|'', dispatched at|false)
--   q:<key>    list   "<seq>:<id>" FIFO; entries whose seq no longer matches the record are
--                     dead (withdrawn) and dropped when they reach the head
--   k:<key>    hash   fs, n (live backlog), srv, used, tag, est, v, pos, base, def;
--                     the only per-key bookkeeping, expired after key_ttl when idle
--   active     zset   backlogged key -> first-seen ordinal
--   known      zset   every key with a k:<key> hash -> first-seen ordinal (monitoring, purge)
--   deadlines  zset   "<seq:15>" .. id -> deadline (seconds)
--   leases     zset   "<seq:15>" .. id -> lease deadline (seconds)
--   weights    hash   key -> weight
--   ops        hash   op token -> lease member of the task that call leased; lets a client
--                     that lost a reply repeat the call and get the same task (deleted when
--                     that lease ends). Tokens: the submitted or finished task's packed id,
--                     or a random token per dispatch call.
--   trace      stream one entry per task outcome (done, failed, retried, expired, revoked),
--                     added by the script that ends or withdraws the task, capped with
--                     MAXLEN ~ RECORD_MAX (record() below; fields: RECORD_FIELDS in
--                     _redis_wire.py)
-- Invariant: a q:<key> list is empty or its head is live, and k:<key>.n counts its live tasks.

-- Several numbers in one argument, separated by spaces ('-' for none): one argument costs
-- the client one encoding step, however many numbers it carries.
local function words(s)
  local out = {}
  for word in string.gmatch(s, '%S+') do out[#out + 1] = word end
  return out
end

local PREAMBLE = words(ARGV[1])
local KEY_TTL_MS, RECORD_MAX = tonumber(PREAMBLE[1]), tonumber(PREAMBLE[2])
local REPLAY = ARGV[2] == '1'
local function arg(i) return ARGV[2 + i] end

-- Redis turns Lua numbers in replies into integers, and tostring() keeps 14 digits: every
-- float leaves a script as a 17-digit string, which round-trips a double exactly.
local function fmt(x) return string.format('%.17g', x) end
local function pad(n) return string.format('%015d', n) end
local function optnum(s) if s == nil or s == '' or s == '-' then return false end return tonumber(s) end

local function load(id)
  local raw = redis.call('HGET', K_TASKS, id)
  if not raw then return nil end
  local seq, key, enq, cost, dl, dm, lm, payload, by, dt = cmsgpack.unpack(raw)
  return {id = id, seq = seq, key = key, enq = enq, cost = cost, dl = dl, dm = dm, lm = lm,
          payload = payload, by = by or '', dt = dt or false}
end

-- `by`: the op token of the call that leased the task ('' when queued); `dt`: when it was
-- last dispatched (false before).
local function save(t)
  redis.call('HSET', K_TASKS, t.id,
    cmsgpack.pack(t.seq, t.key, t.enq, t.cost, t.dl, t.dm, t.lm, t.payload, t.by, t.dt))
end

-- A client that lost the reply of a domain's first call must not be told to start over: the
-- domain is registered (init.lua) before any task is stored, and a domain whose registration
-- is gone (Redis restarted empty, FLUSHALL, purge) refuses writes until it is registered again.
local function registered()
  return redis.call('HEXISTS', K_META, 'init') == 1
end
local NOINIT = 'NOINIT domain is not registered'

-- End the op entry of leased task `t` (its lease is ending), unless a later call reused it.
local function forget_op(t)
  if t.by ~= '' and redis.call('HGET', K_OPS, t.by) == t.lm then
    redis.call('HDEL', K_OPS, t.by)
  end
  t.by = ''
end

-- The task `op` leased, with its lease deadline, if that lease still stands.
local function leased_by(op)
  local m = redis.call('HGET', K_OPS, op)
  if not m then return nil end
  local deadline = redis.call('ZSCORE', K_LEASES, m)
  local t = deadline and load(string.sub(m, 16))
  if t and t.lm == m then return t, tonumber(deadline) end
  return nil
end

local function reply(t, out)
  out[#out + 1] = t.id
  out[#out + 1] = t.key
  out[#out + 1] = fmt(t.enq)
  out[#out + 1] = t.cost and fmt(t.cost) or ''
  out[#out + 1] = t.dl and fmt(t.dl) or ''
  out[#out + 1] = t.payload
  return out
end

-- A reply as one bulk string: the fields' byte lengths separated by spaces, a newline, then
-- the fields back to back. The client slices it in one pass instead of parsing a multi-bulk
-- reply element by element.
local function packed(fields)
  local sizes = {}
  for i = 1, #fields do sizes[i] = #fields[i] end
  return table.concat(sizes, ' ') .. '\n' .. table.concat(fields)
end

local function entry(t) return string.format('%d', t.seq) .. ':' .. t.id end

local function live(e)
  local c = string.find(e, ':', 1, true)
  local t = load(string.sub(e, c + 1))
  if t and t.lm == '' and t.seq == tonumber(string.sub(e, 1, c - 1)) then return t end
  return nil
end

local function head(key) return live(redis.call('LINDEX', kq(key), 0)) end

local function weight(key)
  local w = redis.call('HGET', K_WEIGHTS, key)
  if w then return tonumber(w) end
  return 1.0
end

-- Append task `t`'s outcome to the domain's trace stream (when recording): the script that
-- ends or withdraws a task records it, so a task is recorded once, when it leaves. The
-- stream's own ids (server time) order entries; `finished` is the caller's clock. One field,
-- `r`, holds the values packed as a reply is (packed() above), in the order of RECORD_FIELDS
-- in _redis_wire.py: one field costs Redis less to parse and store than twelve. `now`,
-- `runtime` and `started` are the caller's strings ('' for none), written as they came.
local function record(t, outcome, now, runtime, started, worker)
  if RECORD_MAX <= 0 then return end
  redis.call('XADD', K_TRACE, 'MAXLEN', '~', RECORD_MAX, '*', 'r', packed({
    t.id, t.key, fmt(t.enq), t.dt and fmt(t.dt) or '', started, runtime,
    t.cost and fmt(t.cost) or '', t.dl and fmt(t.dl) or '',
    redis.call('HGET', K_WEIGHTS, t.key) or '1', outcome, worker, now}))
end

-- The key's first-seen ordinal, assigned on first use; `fs` is the stored value if known.
local function first_seen(key, fs)
  if fs == nil then fs = redis.call('HGET', kk(key), 'fs') end
  if fs then return tonumber(fs) end
  fs = redis.call('HINCRBY', K_META, 'fs', 1) - 1
  redis.call('HSET', kk(key), 'fs', fs)
  redis.call('ZADD', K_KNOWN, fs, key)
  return fs
end

local function next_seq() return redis.call('HINCRBY', K_META, 'seq', 1) end

local function backlog(key) return tonumber(redis.call('HGET', kk(key), 'n') or '0') end

-- Pop dead entries until the head is live; false when the list is empty.
local function drop_dead_heads(key)
  local q = kq(key)
  while true do
    local e = redis.call('LINDEX', q, 0)
    if not e then return false end
    if live(e) then return true end
    redis.call('LPOP', q)
  end
end

local function idle(key)
  redis.call('HDEL', kk(key), 'n')
  redis.call('ZREM', K_ACTIVE, key)
  if KEY_TTL_MS > 0 then redis.call('PEXPIRE', kk(key), KEY_TTL_MS) end
end

-- Keep an idle key's bookkeeping on its TTL after a write that may have recreated it.
local function touch_idle(key)
  redis.call('ZADD', K_KNOWN, 'NX', -1, key)
  if KEY_TTL_MS > 0 and backlog(key) == 0 then redis.call('PEXPIRE', kk(key), KEY_TTL_MS) end
end

-- Wake one more consumer blocked on the wake list (when the storage has one), up to MAX_WAKE
-- tokens waiting: a consumer woken either leases a task or drops its token.
local function wake()
  if WAKE and redis.call('LLEN', WAKE) < MAX_WAKE then redis.call('LPUSH', WAKE, WAKE_TOKEN) end
end

-- Keep a token waiting while the domain has a backlog, so a token consumed by a process that
-- died before it leased anything never leaves work unwoken.
local function keep_awake()
  if WAKE and redis.call('ZCARD', K_ACTIVE) > 0 and redis.call('LLEN', WAKE) == 0 then
    redis.call('LPUSH', WAKE, WAKE_TOKEN)
  end
end
