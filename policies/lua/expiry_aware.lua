-- expiry_aware.lua: the Lua twin of policies/_expiry.py (ExpiryAware), wrapping the inner
-- policy's twin assembled before it. Options: OPT.slack (s). Keys: heads zset (pad(first
-- seen) .. key -> deadline of the key's head; only heads that have a deadline).
local INNER = P
P = {}
local K_HEADS = B .. 'heads'

local function head_member(key)
  return pad(tonumber(redis.call('HGET', kk(key), 'fs'))) .. key
end

local function track_head(key)
  local h = head(key)
  if h.dl then
    redis.call('ZADD', K_HEADS, fmt(h.dl), head_member(key))
  else
    redis.call('ZREM', K_HEADS, head_member(key))
  end
end

function P.activate(key, now) INNER.activate(key, now); track_head(key) end

function P.pick(now)
  local top = redis.call('ZRANGE', K_HEADS, 0, 0, 'WITHSCORES')
  if top[1] and tonumber(top[2]) <= now + OPT.slack then return string.sub(top[1], 16) end
  return INNER.pick(now)
end

function P.dispatched(key, t, now, still, fields)
  INNER.dispatched(key, t, now, still, fields)
  if still then track_head(key) else redis.call('ZREM', K_HEADS, head_member(key)) end
end

function P.head_change(key, now) INNER.head_change(key, now); track_head(key) end

function P.deactivate(key, now)
  INNER.deactivate(key, now)
  redis.call('ZREM', K_HEADS, head_member(key))
end

function P.complete(t, runtime) INNER.complete(t, runtime) end
function P.weight_change(key, now) INNER.weight_change(key, now) end
function P.purge() INNER.purge(); redis.call('UNLINK', K_HEADS) end
