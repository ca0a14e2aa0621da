"""The limiter's Lua scripts: one per algorithm, each one round trip, Redis 6.2 commands only.

Each script reads and writes the same keys with the same meanings as
@upstash/ratelimit (window counters as integer strings, the token bucket hash
fields `refilledAt`/`tokens` in milliseconds), so both share one budget. Unlike
upstream, a request that does not fit is rejected without writing anything, and
every key it creates gets a TTL. `rate = 0` reads the state without writing
(used by `get_remaining`); a negative rate refunds, never below zero (windows)
or above the limit (bucket). The optional last KEY is `{prefix}:dynamic:global`:
when it holds a number, it replaces the configured limit.

Time (`now_ms`) is an argument, never `redis.call("TIME")`: the caller's clock
decides the window (the same trade-off as upstream, see `limiter.py`).
"""

from __future__ import annotations

from shared.redis import Script

# KEYS[1] window counter `{prefix}:{id}:{floor(now_ms / window_ms)}`
# KEYS[2] optional dynamic limit key
# ARGV[1] limit, ARGV[2] window_ms, ARGV[3] rate (weight; 0 reads, < 0 refunds)
# Returns {allowed 0|1, used after the call, effective limit}
FIXED_WINDOW = Script(
    """
local limit = tonumber(ARGV[1])
if KEYS[2] then
  local dynamic = tonumber(redis.call("GET", KEYS[2]) or "")
  if dynamic then limit = dynamic end
end
local window = tonumber(ARGV[2])
local rate = tonumber(ARGV[3])
local used = tonumber(redis.call("GET", KEYS[1]) or "0") or 0
if rate > 0 then
  if used + rate > limit then
    return {0, used, limit}
  end
  used = redis.call("INCRBY", KEYS[1], rate)
  if redis.call("PTTL", KEYS[1]) < 0 then
    redis.call("PEXPIRE", KEYS[1], window)
  end
elseif rate < 0 and used > 0 then
  used = redis.call("INCRBY", KEYS[1], math.max(rate, -used))
end
return {1, used, limit}
"""
)

# KEYS[1] current window counter `{prefix}:{id}:{w}`, KEYS[2] previous `{prefix}:{id}:{w-1}`
# KEYS[3] optional dynamic limit key
# ARGV[1] limit, ARGV[2] now_ms, ARGV[3] window_ms, ARGV[4] rate
# Returns {allowed 0|1, current count after the call, previous count, weighted previous,
#          effective limit}; used = current + floor((1 - (now % window) / window) * previous)
SLIDING_WINDOW = Script(
    """
local limit = tonumber(ARGV[1])
if KEYS[3] then
  local dynamic = tonumber(redis.call("GET", KEYS[3]) or "")
  if dynamic then limit = dynamic end
end
local now = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local rate = tonumber(ARGV[4])
local current = tonumber(redis.call("GET", KEYS[1]) or "0") or 0
local previous = tonumber(redis.call("GET", KEYS[2]) or "0") or 0
local weighted = math.floor((1 - (now % window) / window) * previous)
if rate > 0 then
  if current + weighted + rate > limit then
    return {0, current, previous, weighted, limit}
  end
  current = redis.call("INCRBY", KEYS[1], rate)
  if redis.call("PTTL", KEYS[1]) < 0 then
    redis.call("PEXPIRE", KEYS[1], window * 2 + 1000)
  end
elseif rate < 0 and current > 0 then
  current = redis.call("INCRBY", KEYS[1], math.max(rate, -current))
end
return {1, current, previous, weighted, limit}
"""
)

# KEYS[1] bucket hash `{prefix}:{id}` with fields refilledAt (ms) and tokens
# KEYS[2] optional dynamic limit key (replaces max_tokens)
# ARGV[1] max_tokens, ARGV[2] interval_ms, ARGV[3] refill_rate, ARGV[4] now_ms, ARGV[5] rate
# Returns {allowed 0|1, tokens after the call (refills applied), refilledAt, effective max}
TOKEN_BUCKET = Script(
    """
local limit = tonumber(ARGV[1])
if KEYS[2] then
  local dynamic = tonumber(redis.call("GET", KEYS[2]) or "")
  if dynamic then limit = dynamic end
end
local interval = tonumber(ARGV[2])
local refill = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local rate = tonumber(ARGV[5])
local bucket = redis.call("HMGET", KEYS[1], "refilledAt", "tokens")
local refilled_at = tonumber(bucket[1])
local tokens = tonumber(bucket[2])
if not refilled_at or not tokens then
  refilled_at = now
  tokens = limit
end
if now >= refilled_at + interval then
  local refills = math.floor((now - refilled_at) / interval)
  tokens = math.min(limit, tokens + refills * refill)
  refilled_at = refilled_at + refills * interval
end
if rate == 0 then
  return {1, tokens, refilled_at, limit}
end
if rate > 0 and tokens < rate then
  return {0, tokens, refilled_at, limit}
end
local remaining = math.min(limit, tokens - rate)
redis.call("HSET", KEYS[1], "refilledAt", refilled_at, "tokens", remaining)
local ttl = math.ceil((limit - remaining) / refill) * interval
if ttl <= 0 then ttl = interval end
redis.call("PEXPIRE", KEYS[1], ttl)
return {1, remaining, refilled_at, limit}
"""
)

# -- multi-region (`multiregion.py`) ------------------------------------------------------
# Upstream's multi-region layout: each window is a HASH `{prefix}:{id}:{w}` whose fields
# are request ids (16 random characters) and whose values are the request's weight; the
# count is the sum of the values. Every region gets every request; the regions that did
# not record a request learn its id from the background synchronisation. Unlike upstream,
# a request that does not fit is not recorded (upstream's fixed window records it).

# KEYS[1] window hash `{prefix}:{id}:{w}`
# ARGV[1] request id, ARGV[2] window_ms, ARGV[3] rate (0 reads, < 0 refunds), ARGV[4] limit
# Returns {allowed 0|1, used after the call, {id, weight, ...} after the call}
MULTI_FIXED_WINDOW = Script(
    """
local fields = redis.call("HGETALL", KEYS[1])
local used = 0
for i = 2, #fields, 2 do used = used + (tonumber(fields[i]) or 0) end
if redis.call("HEXISTS", KEYS[1], ARGV[1]) == 1 then
  return {1, used, fields}  -- this request is already recorded here (a retried call)
end
local rate = tonumber(ARGV[3])
if rate > 0 and used + rate > tonumber(ARGV[4]) then
  return {0, used, fields}
end
if rate < 0 then rate = math.max(rate, -used) end
if rate ~= 0 then
  redis.call("HSET", KEYS[1], ARGV[1], rate)
  if redis.call("PTTL", KEYS[1]) < 0 then
    redis.call("PEXPIRE", KEYS[1], ARGV[2])
  end
  used = used + rate
  fields[#fields + 1] = ARGV[1]
  fields[#fields + 1] = tostring(rate)
end
return {1, used, fields}
"""
)

# KEYS[1] current window hash `{prefix}:{id}:{w}`, KEYS[2] previous `{prefix}:{id}:{w-1}`
# ARGV[1] limit, ARGV[2] now_ms, ARGV[3] window_ms, ARGV[4] request id, ARGV[5] rate
# Admits when previous * (1 - (now % window) / window) + current + rate <= limit (upstream's
# multi-region test, unrounded). Returns {allowed 0|1, previous sum, {id, weight, ...} of
# the current window after the call}.
MULTI_SLIDING_WINDOW = Script(
    """
local fields = redis.call("HGETALL", KEYS[1])
local current = 0
for i = 2, #fields, 2 do current = current + (tonumber(fields[i]) or 0) end
local older = redis.call("HGETALL", KEYS[2])
local previous = 0
for i = 2, #older, 2 do previous = previous + (tonumber(older[i]) or 0) end
local now = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local rate = tonumber(ARGV[5])
if redis.call("HEXISTS", KEYS[1], ARGV[4]) == 1 then
  return {1, previous, fields}  -- this request is already recorded here (a retried call)
end
local weight = 1 - (now % window) / window
if rate > 0 and previous * weight + current + rate > tonumber(ARGV[1]) then
  return {0, previous, fields}
end
if rate < 0 then rate = math.max(rate, -current) end
if rate ~= 0 then
  redis.call("HSET", KEYS[1], ARGV[4], rate)
  if redis.call("PTTL", KEYS[1]) < 0 then
    redis.call("PEXPIRE", KEYS[1], window * 2 + 1000)
  end
  fields[#fields + 1] = ARGV[4]
  fields[#fields + 1] = tostring(rate)
end
return {1, previous, fields}
"""
)

# The background synchronisation: adds the requests a region has not recorded, until the
# region's window is full (upstream skips a full region; we also stop filling at the limit,
# so requests another region admitted while this one was behind never push it past it).
# KEYS[1] window hash; ARGV[1] TTL (ms) for a hash that has none; ARGV[2] limit;
# ARGV[3..] id, weight pairs. Never overwrites a recorded id. Returns the number added.
MULTI_SYNC = Script(
    """
local fields = redis.call("HGETALL", KEYS[1])
local used = 0
for i = 2, #fields, 2 do used = used + (tonumber(fields[i]) or 0) end
local limit = tonumber(ARGV[2])
local added = 0
for i = 3, #ARGV, 2 do
  if used >= limit then break end
  if redis.call("HSETNX", KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    added = added + 1
    used = used + (tonumber(ARGV[i + 1]) or 0)
  end
end
if redis.call("PTTL", KEYS[1]) < 0 then
  redis.call("PEXPIRE", KEYS[1], ARGV[1])
end
return added
"""
)

# -- concurrency limiter (`concurrency.py`) -------------------------------------------------
# KEYS[1] `{prefix}:{identifier}`: a ZSET of lease ids scored by their expiry (ms).
# Expired leases are pruned on every call, so a holder that died frees its slot when its
# lease ends. The key's TTL follows the latest lease.

# ARGV[1] now_ms, ARGV[2] lease_ms, ARGV[3] max concurrent, ARGV[4] new lease id
# Returns {acquired 0|1, leases held after the call, earliest expiry among them (0: none)}
CONCURRENCY_ACQUIRE = Script(
    """
local now = tonumber(ARGV[1])
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now)
local held = redis.call("ZCARD", KEYS[1])
local acquired = 0
if held < tonumber(ARGV[3]) then
  local expiry = now + tonumber(ARGV[2])
  redis.call("ZADD", KEYS[1], expiry, ARGV[4])
  held = held + 1
  acquired = 1
end
local first = redis.call("ZRANGE", KEYS[1], 0, 0, "WITHSCORES")
local last = redis.call("ZRANGE", KEYS[1], -1, -1, "WITHSCORES")
if last[2] then
  redis.call("PEXPIRE", KEYS[1], math.max(1, tonumber(last[2]) - now))
end
return {acquired, held, tonumber(first[2] or "0")}
"""
)

# ARGV[1] now_ms, ARGV[2] lease_ms, ARGV[3] lease id
# Extends a live lease to now + lease_ms. Returns 1, or 0 when the lease is gone (expired,
# released, or never held): the caller no longer holds a slot.
CONCURRENCY_RENEW = Script(
    """
local now = tonumber(ARGV[1])
local expiry = tonumber(redis.call("ZSCORE", KEYS[1], ARGV[3]) or "")
if not expiry or expiry <= now then
  redis.call("ZREM", KEYS[1], ARGV[3])
  return 0
end
redis.call("ZADD", KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
local last = redis.call("ZRANGE", KEYS[1], -1, -1, "WITHSCORES")
redis.call("PEXPIRE", KEYS[1], math.max(1, tonumber(last[2]) - now))
return 1
"""
)

# -- protection (`protection.py`), upstream's deny-list keys --------------------------------
# KEYS[1] `{prefix}:denyList:all` (SET of every denied value: identifiers, IPs, user agents,
#         countries, and the automatic IP list merged in)
# KEYS[2] `{prefix}:denyList:ipDenyList` (SET: the automatic IP list)
# KEYS[3] `{prefix}:ipDenyListStatus` ("valid" until the next refresh, "disabled", or
#         "pending" for 30 s while one caller refreshes; absent: a refresh is due)
# ARGV[1] 1 when this caller keeps the automatic list up to date, else 0
# ARGV[2..] the request's values in a fixed order (identifier first)
# Returns {position of the first denied value (1-based, 0: none), 1 when that value is in
#          the automatic IP list, 1 when this caller claimed the refresh}
PROTECTION_CHECK = Script(
    """
local denied = redis.call("SMISMEMBER", KEYS[1], unpack(ARGV, 2))
local matched = 0
for i = 1, #denied do
  if denied[i] == 1 then matched = i; break end
end
local automatic = 0
if matched > 0 then
  automatic = redis.call("SISMEMBER", KEYS[2], ARGV[matched + 1])
end
local refresh = 0
if ARGV[1] == "1" and redis.call("EXISTS", KEYS[3]) == 0 then
  redis.call("SET", KEYS[3], "pending", "EX", 30)
  refresh = 1
end
return {matched, automatic, refresh}
"""
)
