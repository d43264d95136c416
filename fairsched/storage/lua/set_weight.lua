-- set_weight.lua: set one key's weight in this domain; it applies from the key's next dispatch.
-- KEYS[1] domain base; ARGV[1] policy preamble, ARGV[2] replay flag; arg(1) key;
-- arg(2) weight; arg(3) now (s). Returns 1.
-- Touches: weights, and the policy's keys if the key is backlogged.
local key = arg(1)
redis.call('HSET', K_WEIGHTS, key, arg(2))
if backlog(key) > 0 then P.weight_change(key, tonumber(arg(3))) end
return 1
