-- weighted_lru.lua: the Lua twin of policies/_weighted.py (WeightedLru, start-time fair
-- queuing). Keys: wlru zset (pad(first seen) .. key -> start tag; equal tags fall back to
-- first-seen order as in the heap); k:<key>.tag; meta.vtime. Tags are stored as %.17g.
local P = {}
local K_WLRU = B .. 'wlru'

local function wl_member(key) return pad(tonumber(redis.call('HGET', kk(key), 'fs'))) .. key end
local function vtime() return tonumber(redis.call('HGET', K_META, 'vtime') or '0') end

function P.activate(key, now)
  local vt = vtime()
  local old = redis.call('HGET', kk(key), 'tag')
  local tag = vt
  if old then tag = math.max(vt, tonumber(old)) end
  redis.call('HSET', kk(key), 'tag', fmt(tag))
  redis.call('ZADD', K_WLRU, fmt(tag), wl_member(key))
end

function P.pick(now)
  local top = redis.call('ZRANGE', K_WLRU, 0, 0)[1]
  if top then return string.sub(top, 16) end
  return nil
end

function P.dispatched(key, t, now, still, fields)
  local tag = tonumber(redis.call('HGET', kk(key), 'tag'))
  local member = wl_member(key)
  if not still then redis.call('ZREM', K_WLRU, member) end
  -- Virtual time: smallest start tag among keys backlogged before this dispatch.
  local top = redis.call('ZRANGE', K_WLRU, 0, 0, 'WITHSCORES')
  local top_tag = math.huge
  if top[1] then top_tag = tonumber(top[2]) end
  redis.call('HSET', K_META, 'vtime', fmt(math.max(vtime(), math.min(tag, top_tag))))
  tag = tag + 1.0 / weight(key)
  fields[#fields + 1] = 'tag'
  fields[#fields + 1] = fmt(tag)
  if still then redis.call('ZADD', K_WLRU, fmt(tag), member) end
end

function P.head_change(key, now) end
function P.deactivate(key, now) redis.call('ZREM', K_WLRU, wl_member(key)) end
function P.complete(t, runtime) end
function P.weight_change(key, now) end
function P.purge() redis.call('UNLINK', K_WLRU) end
