-- last_used.lua: each known key's latest dispatch time; forgets keys whose bookkeeping
-- expired (key_ttl). O(known keys), from the known index, no scan.
-- KEYS[1] domain base; ARGV[1] policy preamble, ARGV[2] replay flag. Returns key, time pairs.
local out = {}
for _, key in ipairs(redis.call('ZRANGE', K_KNOWN, 0, -1)) do
  local used = redis.call('HGET', kk(key), 'used')
  if used then
    out[#out + 1] = key
    out[#out + 1] = used
  elseif redis.call('EXISTS', kk(key)) == 0 then
    redis.call('ZREM', K_KNOWN, key)
  end
end
return out
