-- heartbeat.lua (standalone: runs without _core.lua): renew one worker's heartbeat in one
-- domain.
-- KEYS[1] set of the domain's workers; KEYS[2] the worker's key (both under the domain's
-- hash tag). ARGV[1] worker name; ARGV[2] concurrency; ARGV[3] time to live (ms).
-- Returns 1.
-- The time to live is renewed first: PEXPIRE is a write that never grows memory, and Redis
-- under maxmemory with noeviction refuses only a script's first write that may grow it, so a
-- live worker keeps beating (and keeps its share of the window) while the server is full.
if redis.call('PEXPIRE', KEYS[2], ARGV[3]) == 0 or redis.call('GET', KEYS[2]) ~= ARGV[2] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
