"""The cache's Lua scripts (Redis 6.2-level commands only, as Upstash runs them)."""

from __future__ import annotations

from shared.redis import Script

# Writes the entry and releases the stampede lock if we still own it: the whole
# miss write in one command.
# KEYS[1] value key, KEYS[2] lock key
# ARGV[1] entry, ARGV[2] key TTL in ms, ARGV[3] our lock token
WRITE_AND_UNLOCK = Script(
    """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
return 1
""".strip()
)

# Releases the lock only if we still own it (it may have expired and been taken).
# KEYS[1] lock key
# ARGV[1] our lock token
UNLOCK = Script(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
""".strip()
)

# Takes the stampede lock unless the entry is fresh again by the caller's clock (a late
# caller must not reload what the previous holder just wrote). Returns {1} when the lock
# was taken, {0, entry} when a fresh entry exists, {0} when another caller holds the lock.
# The header parsed here is `c1|<fresh_until_ms>|...` (shared/cache/entry.py).
# KEYS[1] value key, KEYS[2] lock key
# ARGV[1] now in ms, ARGV[2] our lock token, ARGV[3] lock TTL in ms
LOCK_UNLESS_FRESH = Script(
    """
local entry = redis.call('GET', KEYS[1])
if entry then
  local fresh_until = tonumber(string.match(entry, '^c1|(%d+)|'))
  if fresh_until and fresh_until > tonumber(ARGV[1]) then
    return {0, entry}
  end
end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return {1}
end
return {0}
""".strip()
)
