-- shortest_first.lua: the Lua twin of fairsched_shortest_first.ShortestFirst (see
-- docs/policies.md in fairsched for the hooks and what the core provides).
-- Keys: B .. 'shortest_first' zset (pad(first seen) .. key -> score, backlogged keys only);
-- k:<key>.sf_est (run-time estimate), k:<key>.sf_last (dispatch count when last served);
-- meta.sf_count (dispatches). Options: OPT.age, OPT.alpha.
local P = {}
local K_SF = B .. 'shortest_first'

local function member(key) return pad(first_seen(key)) .. key end

-- The same float operations as ShortestFirst._push, in the same order.
local function rescore(key, last)
  local estimate = tonumber(redis.call('HGET', kk(key), 'sf_est') or '0')
  redis.call('ZADD', K_SF, fmt(estimate + OPT.age * last), member(key))
end

function P.activate(key, now)
  local last = redis.call('HGET', kk(key), 'sf_last')
  if not last then
    last = redis.call('HGET', K_META, 'sf_count') or '0'
    redis.call('HSET', kk(key), 'sf_last', last)
  end
  rescore(key, tonumber(last))
end

function P.pick(now)
  local top = redis.call('ZRANGE', K_SF, 0, 0)[1]
  if top then return string.sub(top, 16) end
  return nil
end

function P.dispatched(key, t, now, still, fields)
  local count = redis.call('HINCRBY', K_META, 'sf_count', 1)
  fields[#fields + 1] = 'sf_last'
  fields[#fields + 1] = count
  if still then rescore(key, count) else redis.call('ZREM', K_SF, member(key)) end
end

function P.head_change(key, now) end

function P.deactivate(key, now) redis.call('ZREM', K_SF, member(key)) end

function P.complete(t, runtime)
  local old = redis.call('HGET', kk(t.key), 'sf_est')
  local estimate = runtime
  if old then estimate = OPT.alpha * runtime + (1 - OPT.alpha) * tonumber(old) end
  redis.call('HSET', kk(t.key), 'sf_est', fmt(estimate))
  if redis.call('ZSCORE', K_SF, member(t.key)) then
    rescore(t.key, tonumber(redis.call('HGET', kk(t.key), 'sf_last')))
  end
end

function P.weight_change(key, now) end

function P.purge() redis.call('UNLINK', K_SF) end
