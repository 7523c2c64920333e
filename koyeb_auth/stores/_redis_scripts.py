"""The Lua scripts of the Redis store: each step that must be atomic runs inside Redis as one script.

Anyone with write access may have put anything at our keys (or Redis may have evicted some):
every script reads a key through `str()`, which takes a key of another type for a missing one,
so a tampered key is replaced, never an error that would stop the fleet for good (WRONGTYPE).
"""

from __future__ import annotations

_PRELUDE = """
local function str(key)
  if redis.call('TYPE', key).ok ~= 'string' then return false end
  return redis.call('GET', key)
end
"""

# KEYS: token. ARGV: the largest entry read, in bytes.
# The entry; nil if there is none; 0 for a key that cannot hold one (another type, or too large to
# be a token: not even transferred).
LOAD = _PRELUDE + """
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then return nil end
if kind ~= 'string' or redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[1]) then return 0 end
return redis.call('GET', KEYS[1])
"""

# KEYS: lock, fence counter, this attempt's tombstone. ARGV: owner, lease in ms.
# The lock's value is owner:fence:lease, the lease (ms) its holder set: hosts may be configured
# with different leases, and a lock is judged by its holder's.
# {fence, note}: fence 0 if the lock is taken; note names a corrupt key that was replaced.
# Idempotent for its owner: a retry of the same attempt (after a lost reply) finds its own value and
# has the lock. An attempt abandoned by its caller (see RELEASE) never takes it, however late it
# reaches Redis.
LOCK = _PRELUDE + """
if redis.call('EXISTS', KEYS[3]) == 1 then return {0, ''} end
local note = ''
local held = str(KEYS[1])
if held then
  local mine = string.match(held, '^' .. ARGV[1] .. ':(%d+):%d+$')
  if mine then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {tonumber(mine), ''}
  end
  -- A lock lives no longer than the lease its holder set: one that would was planted. A lock that
  -- states no lease (written by hand, or by an older version) is given ten times ours. A stated
  -- lease is believed up to an hour, or ten times ours if longer: a longer one was planted too.
  local ours = tonumber(ARGV[2])
  local theirs = tonumber(string.match(held, '^%x+:%d+:(%d+)$') or '')
  local lease = math.min(theirs or 10 * ours, math.max(10 * ours, 3600000))
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl >= 0 and ttl <= lease then return {0, ''} end
  note = ttl < 0 and 'a lock without a lease' or 'a lock with a lease longer than its holder asks for'
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  note = 'a lock of type ' .. redis.call('TYPE', KEYS[1]).ok
end
local counter = str(KEYS[2])
if not (counter and #counter < 16 and string.match(counter, '^%d+$')) then
  if redis.call('EXISTS', KEYS[2]) == 1 then note = 'a fence counter that is not a number' end
  redis.call('DEL', KEYS[2])
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. fence .. ':' .. ARGV[2], 'PX', ARGV[2])
return {fence, note}
"""

# KEYS: lock, token, fence counter. ARGV: lock value, fence, the entry's JSON without its closing
# brace (the script appends the fence it writes), time to live in ms (0: none).
# 1 written; 2 written after restoring a lost fence counter; 0 our lease ran out; -1 a holder with a
# newer fence already wrote.
SAVE = _PRELUDE + """
if str(KEYS[1]) ~= ARGV[1] then return 0 end
local fence, outcome = tonumber(ARGV[2]), 1
local old = str(KEYS[2])
if old then
  local ok, entry = pcall(cjson.decode, old)
  local theirs = ok and type(entry) == 'table' and tonumber(entry['fence'])
  if theirs and theirs > fence then
    local counter = tonumber(str(KEYS[3]) or '')
    if counter and counter >= theirs then return -1 end
    -- The counter is behind a number it handed out: it was lost (DEL, eviction, a restart) and
    -- started again. We hold the lock, so no one else writes now: carry on above the stored
    -- number, so that fencing numbers stay monotonic.
    fence, outcome = theirs + 1, 2
    redis.call('SET', KEYS[3], fence)
  end
end
local entry = ARGV[3] .. ', "fence": ' .. fence .. '}'
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[2], entry, 'PX', ARGV[4])
else
  redis.call('SET', KEYS[2], entry)
end
return outcome
"""

# KEYS: lock, token. ARGV: lock value. 1 deleted; 0 our lease ran out.
DELETE = _PRELUDE + """
if str(KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
return 1
"""

# KEYS: lock. ARGV: lock value, lease in ms. 1 extended; 0 the lock is no longer ours.
EXTEND = _PRELUDE + """
if str(KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

# KEYS: lock, the attempt's tombstone. ARGV: owner, tombstone life in ms (0: none).
# Deletes the lock if this owner holds it. With a tombstone, also makes sure that the owner's lock
# attempt, if it is still on its way (a caller that timed out or was cancelled), takes nothing.
RELEASE = _PRELUDE + """
local held = str(KEYS[1])
if held and string.match(held, '^' .. ARGV[1] .. ':%d+:%d+$') then redis.call('DEL', KEYS[1]) end
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end
return 1
"""
