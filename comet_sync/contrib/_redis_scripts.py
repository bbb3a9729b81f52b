"""The Lua scripts of the Redis limiter (``contrib.redis``): each runs atomically in Redis, on
Redis's clock (``TIME``), never the hosts'.

The keys of a namespace are shared with every process that can reach the server, so nothing in
them is trusted: a key of another type, a value that is not a finite number or lies outside
what we ever write was not written by us and is deleted (the namespace heals instead of
failing every call), and each value is clamped to the calling client's own configuration (a
shared ``limit`` of 1,000 does not lift a configured cap of 4). Every key written has a TTL.

Under ``maxmemory`` Redis refuses a script whose *first* write may add memory and lets every
later write through. Each script's first write is one that adds none (ZREMRANGEBYSCORE, ZREM,
PEXPIRE or the DEL of a foreign key), so leases keep being taken, given back and renewed while
Redis is out of memory: a lease whose renewal was refused would lapse while its call runs,
and its slot be granted a second time.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "PUBLISH_PACE", "RELEASE", "RENEW"]

# Defines `now` (Redis's clock, ms), `owned` and `number_at`.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local FINITE = 2 ^ 53

-- Whether `key` may be used as a `kind` key: absent, or of that type. A key of another type
-- was not written by us and is deleted.
local function owned(key, kind)
  local found = redis.call('TYPE', key)['ok']
  if found == 'none' or found == kind then return true end
  redis.call('DEL', key)
  return false
end

-- The number stored at `key`, or nil. Text, NaN, an infinity or a value outside
-- [lowest, highest] is none of ours: deleted.
local function number_at(key, lowest, highest)
  if not owned(key, 'string') then return nil end
  local raw = redis.call('GET', key)
  if not raw then return nil end
  local n = tonumber(raw)
  if n == nil or n ~= n or n < lowest or n > highest then
    redis.call('DEL', key)
    return nil
  end
  return n
end
"""

# KEYS: leases, limit, lastcut, cooldown, tat, and the model's pace, pace schedule, recent sends
#       (contrib/_redis_pace.py)
# ARGV: lease id, lease ttl ms, max concurrency, rpm interval ms (0: none), burst ms,
#       longest pause ms, end of a pause this client no longer honours (0: none),
#       adaptive state ttl ms
# Returns {granted, in flight or wait ms (-1: full), now, limit, end of the pause waited for,
#          the model's shared pace (requests/s, as text; "0": none), the model's sends over the
#          last second, this one's included (0 when not granted)}
ACQUIRE = (
    _PRELUDE
    + """
owned(KEYS[1], 'zset')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local cool = number_at(KEYS[4], -FINITE, FINITE)
if cool and cool > now then
  cool = math.floor(cool)
  if redis.call('PTTL', KEYS[4]) == -1 then
    -- A pause without a TTL was not written by us (ours always expire with the pause): it
    -- would stop every process that ever starts. It lasts the longest pause we honour.
    redis.call('PEXPIRE', KEYS[4], math.max(1, math.min(cool - now, tonumber(ARGV[6]))))
  end
  if cool ~= tonumber(ARGV[7]) then return {0, cool - now, now, 0, cool, '0', 0} end
end
local max = tonumber(ARGV[3])
local limit = math.floor(math.min(number_at(KEYS[2], 1, FINITE) or max, max))
local n = redis.call('ZCARD', KEYS[1])
if n >= limit then return {0, -1, now, 0, 0, '0', 0} end
local interval = tonumber(ARGV[4])
local wait = 0
local tat
if interval > 0 then
  local burst = tonumber(ARGV[5])
  -- No booking of ours reaches further ahead than a burst: a schedule beyond it is none of ours.
  tat = math.max(number_at(KEYS[5], -FINITE, now + burst) or now, now)
  wait = math.max(wait, tat + interval - burst - now)
end
-- The model's pace, shared: no burst (a found pace never bursts), and no interval longer than
-- the longest pause (max_wait): a pace written by anyone else is clamped to what we would set.
local pace = number_at(KEYS[6], 0, FINITE)
local step, ptat
if pace and pace > 0 then
  step = math.min(1000 / pace, tonumber(ARGV[6]))
  ptat = math.max(number_at(KEYS[7], -FINITE, now + step) or now, now)
  wait = math.max(wait, ptat - now)
else
  pace = 0
end
if wait > 0 then return {0, math.ceil(wait), now, 0, 0, tostring(pace), 0} end
if tat then
  redis.call('SET', KEYS[5], tat + interval, 'PX', math.ceil(tat + interval - now) + 1000)
end
local ttl = tonumber(ARGV[8])
if ptat then
  redis.call('SET', KEYS[7], ptat + step, 'PX', math.ceil(ptat + step - now) + 1000)
  redis.call('PEXPIRE', KEYS[6], ttl)  -- in use: not forgotten
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
-- The model's sends over the last second, every process's: this one's share of them scales
-- what it measures to the quota (a count, not send numbers: sends come in bursts).
if owned(KEYS[8], 'zset') then redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now - 1000) end
redis.call('ZADD', KEYS[8], now, ARGV[1])
redis.call('PEXPIRE', KEYS[8], 2000)
local recent = redis.call('ZCARD', KEYS[8])
return {1, n + 1, now, limit, 0, tostring(pace), recent}
"""
)

# KEYS: leases, limit, lastcut, cooldown, the model's recent sends
# ARGV: lease id, outcome (0 other, 1 success, 2 throttled), sent at ms, retry after ms,
#       cut to (0: no cut; the cap policy's answer, _rate/cap.py), max concurrency,
#       in flight at send, longest pause ms, adaptive state ttl ms
# Returns the shared limit, as this client sees it.
RELEASE = (
    _PRELUDE
    + """
if owned(KEYS[1], 'zset') then redis.call('ZREM', KEYS[1], ARGV[1]) end
local max = tonumber(ARGV[6])
local limit = math.min(number_at(KEYS[2], 1, FINITE) or max, max)
local ttl = tonumber(ARGV[9])
local outcome = tonumber(ARGV[2])
if outcome == 2 then
  -- Refused: not among the sends the server took, which the shares are read off.
  if owned(KEYS[5], 'zset') then redis.call('ZREM', KEYS[5], ARGV[1]) end
  -- Clamped here too: a pause written to Redis outlives this process, so no value any
  -- client sends may stop every process for longer than max_wait.
  local ra = math.min(tonumber(ARGV[4]), tonumber(ARGV[8]))
  if ra > 0 then
    local cool = number_at(KEYS[4], -FINITE, FINITE) or 0
    if now + ra > cool then redis.call('SET', KEYS[4], now + ra, 'PX', ra) end
  end
  -- A cut in the future is none of ours: it would stop every cut after it.
  local last = number_at(KEYS[3], 0, now) or 0
  -- strictly after: a request sent in the millisecond of the last cut belongs to its burst
  local cut = tonumber(ARGV[5])
  if cut > 0 and tonumber(ARGV[3]) > last then
    -- Where to is the cap policy's rule, stated once in Python (cap.py); here only "never up":
    -- another process may have cut lower meanwhile.
    limit = math.min(limit, cut)
    redis.call('SET', KEYS[2], limit, 'PX', ttl)
    redis.call('SET', KEYS[3], now, 'PX', ttl)
  end
elseif outcome == 1 then
  if tonumber(ARGV[7]) >= math.floor(limit) and limit < max then
    limit = math.min(max, limit + 1 / limit)
    redis.call('SET', KEYS[2], limit, 'PX', ttl)
  end
end
-- The adaptive state lives while the namespace is used, and is forgotten when it is not.
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return tostring(limit)
"""
)

# KEYS: a model's pace (contrib/_redis_pace.py)
# ARGV: the pace (requests/s), the pace it grew from (0: measured, it replaces any; -1: grown
#       from none seen, so only where there is none), adaptive state ttl ms
# Returns the pace now in force, as text: another process's, if it moved the one we grew from.
PUBLISH_PACE = (
    _PRELUDE
    + """
local base = tonumber(ARGV[2])
local current = number_at(KEYS[1], 0, FINITE)
if base ~= 0 and current and math.abs(current - base) > 0.01 * math.abs(base) then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
  return tostring(current)
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[3]))
return ARGV[1]
"""
)

# KEYS: leases
# ARGV: lease ttl ms, lease id...
# Returns how many of the leases were still there to renew.
RENEW = (
    _PRELUDE
    + """
if redis.call('TYPE', KEYS[1])['ok'] ~= 'zset' then return 0 end
local ttl = tonumber(ARGV[1])
-- First, as it adds no memory (see the module's docstring); the set itself expires when
-- nobody uses the namespace.
redis.call('PEXPIRE', KEYS[1], ttl * 2)
local renewed = 0
for i = 2, #ARGV do
  -- XX: a lease given back (or lapsed and granted to another) meanwhile is not brought back.
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + ttl, ARGV[i])
end
return renewed
"""
)
