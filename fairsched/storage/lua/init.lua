-- init.lua: fill a domain's weights with those not set there yet (global settings first, then
-- the policy's configured weights); run once per process and domain before its first enqueue.
-- KEYS[1] domain base; ARGV[1] policy preamble; ARGV[2..] key, weight pairs.
-- Returns 1. Touches: weights.
local i = 1
while arg(i) do
  redis.call('HSETNX', K_WEIGHTS, arg(i), arg(i + 1))
  i = i + 2
end
return 1
