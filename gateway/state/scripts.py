"""The Lua scripts of the Redis backend. Each runs atomically on the server.

They are registered once (``register_script``) and called by SHA (EVALSHA); redis-py reloads a script
transparently when a restarted Redis answers NOSCRIPT. Time comes from the server's ``TIME`` so that
every replica agrees on window boundaries and staleness, whatever its own clock says.

Keys and Redis Cluster: a script may only touch keys of one hash slot, so each builds the names it
derives (window indexes, periods, request ids) from a key it was given, and those carry a hash tag
(``{...}``) that every derived name shares: the team for rate limits (``{team}`` in the bucket, so a
key's and its team's buckets are checked in one script), ``{spend}`` for every spend counter and marker.
The same names are used on a standalone Redis, so one layout serves both.
"""

from __future__ import annotations

# KEYS: one base key per bucket. ARGV: window_ms, now_ms (0: server time), then limit, cost per bucket.
# Returns {admitted, window, elapsed_ms, prev_1, curr_1, prev_2, curr_2, ...} (counts before the charge).
RATE_CONSUME = """
local w = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local win = math.floor(now / w)
local elapsed = now - win * w
local out = {0, win, elapsed}
local admitted = 1
for i, base in ipairs(KEYS) do
  local limit = tonumber(ARGV[1 + 2 * i])
  local cost = tonumber(ARGV[2 + 2 * i])
  local prev = tonumber(redis.call('GET', base .. ':' .. (win - 1)) or '0')
  local curr = tonumber(redis.call('GET', base .. ':' .. win) or '0')
  out[2 + 2 * i] = prev
  out[3 + 2 * i] = curr
  if prev * (w - elapsed) + (curr + cost) * w > limit * w then
    admitted = 0
  end
end
if admitted == 1 then
  for i, base in ipairs(KEYS) do
    local cost = tonumber(ARGV[2 + 2 * i])
    if cost > 0 then
      local key = base .. ':' .. win
      redis.call('INCRBY', key, cost)
      redis.call('PEXPIRE', key, 2 * w + 1000)
    end
  end
end
out[1] = admitted
return out
"""

# KEYS[1]: one window of a bucket. ARGV[1]: delta. Only touches a window that still exists.
RATE_ADJUST = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v < 0 then
  redis.call('SET', KEYS[1], 0, 'KEEPTTL')
end
return 1
"""

# KEYS[1]: the spend base key (``<prefix>{spend}``; every name below extends it, one hash slot).
# ARGV: unused, dedupe_ttl_s, day_ttl_s, month_ttl_s, then groups of 7:
# request_id, key, team, deployment, nanos, day, month.
# Each request id counts once: SET NX on its marker, and only if that succeeded the six HINCRBYs
# (key, team, deployment x day, month). Nano-dollars are integers, so the sums are exact.
SPEND_ADD = """
local p = KEYS[1] .. ':'
local dedupe_ttl, day_ttl, month_ttl = ARGV[2], ARGV[3], ARGV[4]
local kinds = {'key', 'team', 'deployment'}
local applied = 0
for i = 5, #ARGV, 7 do
  if redis.call('SET', p .. 'req:' .. ARGV[i], '1', 'NX', 'EX', dedupe_ttl) then
    local nanos = ARGV[i + 4]
    local day = p .. 'd:' .. ARGV[i + 5] .. ':'
    local month = p .. 'm:' .. ARGV[i + 6] .. ':'
    for k = 1, 3 do
      local name = ARGV[i + k]
      redis.call('HINCRBY', day .. kinds[k], name, nanos)
      redis.call('EXPIRE', day .. kinds[k], day_ttl)
      redis.call('HINCRBY', month .. kinds[k], name, nanos)
      redis.call('EXPIRE', month .. kinds[k], month_ttl)
    end
    applied = applied + 1
  end
end
return applied
"""

# KEYS[1]: the shadow base key, ``<prefix>{shadow}``: every name below extends it, so all of them share its
# hash tag and one cluster slot. ARGV: dedupe_ttl_s, day_ttl_s, month_ttl_s, then per entry: shadow_id, day,
# month, n, and n (field, increment) pairs. Each shadow id counts once (SET NX on its marker); its counters go
# to the day's and the month's hash with HINCRBY (integers: exact sums).
SHADOW_ADD = """
local base = KEYS[1] .. ':'
local dedupe_ttl, day_ttl, month_ttl = ARGV[1], ARGV[2], ARGV[3]
local applied = 0
local i = 4
while i <= #ARGV do
  local id, day, month, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local first = i + 4
  i = first + 2 * n
  if redis.call('SET', base .. 'id:' .. id, '1', 'NX', 'EX', dedupe_ttl) then
    local d, m = base .. 'd:' .. day, base .. 'm:' .. month
    for j = first, first + 2 * n - 1, 2 do
      redis.call('HINCRBY', d, ARGV[j], ARGV[j + 1])
      redis.call('HINCRBY', m, ARGV[j], ARGV[j + 1])
    end
    redis.call('EXPIRE', d, day_ttl)
    redis.call('EXPIRE', m, month_ttl)
    applied = applied + 1
  end
end
return applied
"""

# KEYS[1]: the stats hash. ARGV: member, payload, ttl_ms. Values are "<server ms>|<payload>".
STATS_PUBLISH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], now .. '|' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return now
"""

# KEYS[1]: the stats hash. ARGV[1]: ttl_ms. Returns {member, payload, ...} of fresh members and
# deletes the stale ones (a process that died stops publishing and drops out after ttl).
STATS_FETCH = """
local t = redis.call('TIME')
local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local value = all[i + 1]
  local sep = string.find(value, '|', 1, true)
  local ts = sep and tonumber(string.sub(value, 1, sep - 1)) or 0
  if ts < cutoff then
    redis.call('HDEL', KEYS[1], all[i])
  else
    out[#out + 1] = all[i]
    out[#out + 1] = string.sub(value, sep + 1)
  end
end
return out
"""

ALL = (RATE_CONSUME, RATE_ADJUST, SPEND_ADD, SHADOW_ADD, STATS_PUBLISH, STATS_FETCH)
