-- init.lua: register the domain: fill its weights with those not set there yet (global
-- settings first, then the ones this client was configured or set with, then the policy's),
-- then mark it registered, which enqueue and submit require (see registered() in _core.lua).
-- Run before a process's first enqueue in the domain, and again whenever a script answers
-- NOINIT (the domain's data is gone).
-- KEYS[1] domain base; ARGV[1] policy preamble, ARGV[2] replay flag; arg(1..) key, weight
-- pairs. Returns 1. Touches: weights, meta.
local i = 1
while arg(i) do
  redis.call('HSETNX', K_WEIGHTS, arg(i), arg(i + 1))
  i = i + 2
end
redis.call('HSET', K_META, 'init', 1)
return 1
