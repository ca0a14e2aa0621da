"""The cache's Lua scripts (Redis 6.2-level commands only, as Upstash runs them).

Invalidation markers: `invalidate` deletes the entry and its lock and sets the
key's marker (`{namespace}:~gen:{key}`) to a fresh random value. Every load
records the marker as it was when the load began (read in the same command that
decided to load: the lock, or the poll), and its write is a compare-and-set on
it: a DEL that happened after the load began defeats the write, so a value read
before a delete is never written back after it.
"""

from __future__ import annotations

from shared.redis import Script

# The miss write: writes the entry unless the key was invalidated since the load began,
# and releases the stampede lock if we still own it, in ONE command.
# KEYS[1] value key, KEYS[2] lock key, KEYS[3] marker key
# ARGV[1] entry, ARGV[2] key TTL in ms, ARGV[3] our lock token, ARGV[4] marker seen ('' none)
# Returns 1 when the entry was written, 0 when an invalidation defeated it.
WRITE_AND_UNLOCK = Script(
    """
local written = 0
if (redis.call('GET', KEYS[3]) or '') == ARGV[4] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  written = 1
end
if redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
return written
""".strip()
)

# A write without a lock (after waiting for another holder), with the same condition.
# KEYS[1] value key, KEYS[2] marker key
# ARGV[1] entry, ARGV[2] key TTL in ms, ARGV[3] marker seen ('' none)
WRITE_UNLESS_INVALIDATED = Script(
    """
if (redis.call('GET', KEYS[2]) or '') == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
""".strip()
)

# Takes the stampede lock unless the entry is fresh again by the caller's clock (a late
# caller must not reload what the previous holder just wrote). Returns {1, marker} when
# the lock was taken, {0, marker} when another caller holds it, {2, marker, entry} when a
# fresh entry exists; `marker` is the key's invalidation marker now ('' when none).
# The header parsed here is `c1|<fresh_until_ms>|...` (shared/cache/entry.py).
# KEYS[1] value key, KEYS[2] lock key, KEYS[3] marker key
# ARGV[1] now in ms, ARGV[2] our lock token, ARGV[3] lock TTL in ms
LOCK_UNLESS_FRESH = Script(
    """
local marker = redis.call('GET', KEYS[3]) or ''
local entry = redis.call('GET', KEYS[1])
if entry then
  local fresh_until = tonumber(string.match(entry, '^c1|(%d+)|'))
  if fresh_until and fresh_until > tonumber(ARGV[1]) then
    return {2, marker, entry}
  end
end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return {1, marker}
end
return {0, marker}
""".strip()
)

# Invalidates keys: deletes each entry and its lock (the next reader loads at once instead
# of waiting for a load that can no longer be written) and sets its marker.
# KEYS value, lock and marker key of each invalidated key, in triples
# ARGV[1] the new marker (random), ARGV[2] how long markers are kept, in ms
# Returns the number of entries deleted.
INVALIDATE = Script(
    """
local deleted = 0
for i = 1, #KEYS, 3 do
  deleted = deleted + redis.call('DEL', KEYS[i])
  redis.call('DEL', KEYS[i + 1])
  redis.call('SET', KEYS[i + 2], ARGV[1], 'PX', ARGV[2])
end
return deleted
""".strip()
)
