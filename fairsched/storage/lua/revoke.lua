-- revoke.lua: withdraw one queued task (a leased one is left alone).
-- KEYS[1] domain base; ARGV[1] policy preamble, ARGV[2] replay flag; arg(1) task id;
-- arg(2) now (s).
-- Returns the task's 6 fields, or {} when it is not queued here.
-- Touches: tasks, q:<key>, k:<key>, active, deadlines, trace, the policy's keys.
local t = load(arg(1))
if not t or t.lm ~= '' then return {} end
withdraw(t, tonumber(arg(2)))
record(t, 'revoked', arg(2), '', '', '')
return reply(t, {})
