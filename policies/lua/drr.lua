-- drr.lua: the Lua twin of policies/_drr.py (DeficitRoundRobin).
-- Keys: drr zset (pad(position) .. key -> visit round; order = (visit, position) as in the
-- heap); k:<key>.v, pos, base, def (deficit), est (run-time estimate); meta.round, positions,
-- cmean (mean charged cost: the automatic quantum), rmean (mean run time: a new key's cost).
-- Options: OPT.quantum (0: automatic), OPT.alpha (the estimates' smoothing).
-- Same float operations in the same order as the Python, so the same rounding.
local P = {}
local K_DRR = B .. 'drr'

local function kgetn(key, field) return tonumber(redis.call('HGET', kk(key), field)) end

-- The cost known for task t (declared, the key's estimate, the mean run time), or nil.
local function drr_known_cost(t)
  if t.cost then return t.cost end
  local est = redis.call('HGET', kk(t.key), 'est')
  if est then return tonumber(est) end
  local mean = redis.call('HGET', K_META, 'rmean')
  if mean then return tonumber(mean) end
  return nil
end

local function drr_cost(t) return drr_known_cost(t) or 1.0 end

local function drr_quantum()
  if OPT.quantum > 0 then return OPT.quantum end
  for _, field in ipairs({'cmean', 'rmean'}) do
    local mean = tonumber(redis.call('HGET', K_META, field) or '0')
    if mean > 0 then return mean end
  end
  return 1.0
end

-- An exponentially weighted mean kept in meta, as the Python does (same operations).
local function ewma(field, value)
  local old = redis.call('HGET', K_META, field)
  local new = value
  if old then new = OPT.alpha * value + (1 - OPT.alpha) * tonumber(old) end
  redis.call('HSET', K_META, field, fmt(new))
end

local function drr_schedule(key, pos, continuing)
  local cost = drr_cost(head(key))
  local deficit, base = kgetn(key, 'def'), kgetn(key, 'base')
  local visit
  if continuing and deficit >= cost then
    visit = base
  else
    local per_round = drr_quantum() * weight(key)
    visit = base + math.max(1, math.ceil((cost - deficit) / per_round))
  end
  redis.call('HSET', kk(key), 'v', fmt(visit), 'pos', fmt(pos))
  redis.call('ZADD', K_DRR, fmt(visit), pad(pos) .. key)
end

local function drr_round() return tonumber(redis.call('HGET', K_META, 'round') or '0') end

function P.activate(key, now)
  local pos = redis.call('HINCRBY', K_META, 'positions', 1)
  redis.call('HSET', kk(key), 'base', fmt(drr_round() - 1), 'def', '0')
  drr_schedule(key, pos, false)
end

function P.pick(now)
  local top = redis.call('ZRANGE', K_DRR, 0, 0)[1]
  if top then return string.sub(top, 16) end
  return nil
end

local function drr_deactivate(key)
  redis.call('ZREM', K_DRR, pad(kgetn(key, 'pos')) .. key)
  redis.call('HDEL', kk(key), 'v', 'pos', 'base', 'def')
end

function P.deactivate(key, now) drr_deactivate(key) end

function P.dispatched(key, t, now, still, fields)
  local visit, pos = kgetn(key, 'v'), kgetn(key, 'pos')
  local top = redis.call('ZRANGE', K_DRR, 0, 0, 'WITHSCORES')
  -- Served in turn: the round advances to this visit; out of turn: charged in this round.
  local current = drr_round()
  if top[1] and tonumber(top[2]) == visit then current = visit end
  redis.call('HSET', K_META, 'round', fmt(current))
  -- The automatic quantum counts this cost before it grants the rounds' credit (as in
  -- _drr.py); the placeholder 1 says nothing about the costs' scale and is not counted.
  local known = drr_known_cost(t)
  if known then ewma('cmean', known) end
  local grant = drr_quantum() * weight(key)
  local credit = kgetn(key, 'def') + (current - kgetn(key, 'base')) * grant
  local left = credit - (known or 1.0)
  -- With the automatic quantum a key banks at most one round's grant (as in _drr.py).
  if OPT.quantum <= 0 then left = math.min(left, grant) end
  redis.call('HSET', kk(key), 'base', fmt(current), 'def', fmt(left))
  if still then drr_schedule(key, pos, true) else drr_deactivate(key) end
end

function P.head_change(key, now)
  drr_schedule(key, kgetn(key, 'pos'), kgetn(key, 'v') == kgetn(key, 'base'))
end

function P.complete(t, runtime)
  ewma('rmean', runtime)
  if not t.cost then
    local old = redis.call('HGET', kk(t.key), 'est')
    local est = runtime
    if old then est = OPT.alpha * runtime + (1 - OPT.alpha) * tonumber(old) end
    redis.call('HSET', kk(t.key), 'est', fmt(est))
  end
end

P.weight_change = P.head_change
function P.purge() redis.call('UNLINK', K_DRR) end
