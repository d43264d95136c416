-- lru.lua: the Lua twin of policies/_lru.py (PureLru); see docs/policies.md, "Lua twins".
-- Keys: lru zset (backlogged key -> rank); k:<key>.srv (dispatch counter at last service);
-- meta.lru (dispatch counter). Ranks are integers below 2**53, exact as zset scores, and
-- unique, so the zset order is the heap order of the Python policy.
local P = {}
local K_LRU = B .. 'lru'
local NEVER_SERVED = -4503599627370496  -- -(2**52), as in _lru.py

local function lru_rank(key)
  local served = redis.call('HGET', kk(key), 'srv')
  if served then return tonumber(served) end
  return NEVER_SERVED + tonumber(redis.call('HGET', kk(key), 'fs'))
end

function P.activate(key, now) redis.call('ZADD', K_LRU, fmt(lru_rank(key)), key) end

function P.pick(now) return redis.call('ZRANGE', K_LRU, 0, 0)[1] end

function P.dispatched(key, t, now, still, fields)
  local counter = redis.call('HINCRBY', K_META, 'lru', 1)
  fields[#fields + 1] = 'srv'
  fields[#fields + 1] = counter
  if still then redis.call('ZADD', K_LRU, counter, key) else redis.call('ZREM', K_LRU, key) end
end

function P.head_change(key, now) end
function P.deactivate(key, now) redis.call('ZREM', K_LRU, key) end
function P.complete(t, runtime) end
function P.weight_change(key, now) end
function P.purge() redis.call('UNLINK', K_LRU) end
