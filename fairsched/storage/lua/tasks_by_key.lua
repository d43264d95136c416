-- tasks_by_key.lua: the live queued tasks of one key in dispatch order (read only).
-- KEYS[1] domain base; ARGV[1] policy preamble, ARGV[2] replay flag; arg(1) key;
-- arg(2) limit (-1: all).
-- Returns tasks, 6 fields each. Dead entries are skipped; reads in chunks of 256.
local key, limit = arg(1), tonumber(arg(2))
local q = kq(key)
local out, found, start = {}, 0, 0
while limit < 0 or found < limit do
  local chunk = redis.call('LRANGE', q, start, start + 255)
  if #chunk == 0 then break end
  for _, e in ipairs(chunk) do
    local t = live(e)
    if t then
      reply(t, out)
      found = found + 1
      if limit >= 0 and found >= limit then break end
    end
  end
  start = start + 256
end
return out
