"""The cache's Redis operations: each bounded by the cache timeout, none ever raising.

The bound is the Redis view's own whole-call deadline (`total_timeout`): the transport's
one timer enforces it, so no second timer is armed per call (a JS `setTimeout` in Pyodide).

A Redis error or timeout becomes `FAILED` (logged with the error type only, never
a value or a token); the cache then bypasses Redis for the rest of the call.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from shared.cache.codec import Codec, encode_text
from shared.cache.entry import Entry, decode_entry, encode_entry
from shared.cache.scripts import (
    INVALIDATE,
    LOCK_UNLESS_FRESH,
    WRITE_AND_UNLOCK,
    WRITE_UNLESS_INVALIDATED,
)
from shared.durations import Duration, parse_duration_ms
from shared.errors import UpstashError
from shared.redis import Redis, delete_if_equals

log = logging.getLogger(__name__)

T = TypeVar("T")


class Failed:
    """Redis did not answer in time or answered with an error."""

    def __repr__(self) -> str:
        return "FAILED"


FAILED: Final = Failed()

# How long an invalidation marker is kept: longer than any load can run (the platforms end a
# request, and its waitUntil work, within minutes), so a load that began before an
# invalidation always finds the marker changed when it tries to write.
MARKER_MS: Final = 10 * 60 * 1000


@dataclass(frozen=True, slots=True)
class Policy:
    """How one call stores entries: TTLs in ms (`negative_ms` None: "not found" is not
    cached) and the codec."""

    ttl_ms: int
    stale_ms: int
    negative_ms: int | None
    codec: Codec[Any]


@dataclass(frozen=True, slots=True)
class Found:
    """A usable entry read from Redis: its decoded value and whether it is past its TTL."""

    value: Any
    stale: bool


def duration_ms(name: str, value: Duration, *, allow_zero: bool = False) -> int:
    """`value` in ms through the project's one duration grammar; `ValueError` naming `name`."""
    ms = parse_duration_ms(value)
    if ms <= 0 and not (allow_zero and ms == 0):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return ms


def poll_delays(wait_ms: int) -> list[float]:
    """Backoff between polls (10 ms doubling to 100 ms) summing to at least `wait_ms`.

    Counted, not clocked: on Workers the clock stands still between I/O.
    """
    delays: list[float] = []
    total, step = 0, 10
    while total < wait_ms:
        delays.append(step / 1000)
        total += step
        step = min(step * 2, 100)
    return delays


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of trying to take the stampede lock.

    `outcome`: True (the lock is ours: load, then `put_and_unlock`), False (someone
    else holds it), the text of a fresh entry written meanwhile, or FAILED. `marker`
    is the key's invalidation marker when the lock was tried, the condition of the
    write that follows the load.
    """

    outcome: bool | str | bytes | Failed
    token: str
    marker_key: str
    marker: str = ""


class EntryStore:
    """Reads and writes entries of one namespace through a timeout-bounded client view."""

    def __init__(
        self,
        redis: Redis[Any],
        *,
        timeout: float,
        lock_ms: int,
        now_ms: Callable[[], int],
        jitter: Callable[[int], int],
    ) -> None:
        self.timeout = timeout
        self.redis = redis.with_options(timeout=timeout, total_timeout=True)
        self.lock_ms = lock_ms
        self.now_ms = now_ms
        self.jitter = jitter

    async def guard(self, what: str, call: Awaitable[T]) -> T | Failed:
        """`call`'s result, or FAILED after a Redis error or `timeout` (logged, never raised).

        `call` goes through `self.redis`, whose deadline covers the whole call."""
        try:
            return await call
        except (UpstashError, TimeoutError) as exc:
            log.warning("cache: Redis %s failed, bypassing the cache: %s", what, type(exc).__name__)
            return FAILED

    # -- entries -----------------------------------------------------------------------

    def read(self, rkey: str, raw: str | bytes | None, policy: Policy) -> Found | None:
        """The usable entry in `raw`, or None (absent, expired, or undecodable: a miss)."""
        if raw is None:
            return None
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            entry = decode_entry(text)
            if entry is None:
                raise ValueError("not a cache entry of this format version")
            freshness = entry.freshness(self.now_ms())
            if freshness == "expired":
                return None
            value = None if entry.negative else policy.codec.decode(entry.payload)
        except Exception as exc:  # a schema change must never fail the request
            log.warning(
                "cache: entry %s no longer decodes, treating it as a miss: %s",
                rkey,
                type(exc).__name__,
            )
            return None
        return Found(value, stale=freshness == "stale")

    def encode(self, rkey: str, value: Any, policy: Policy) -> tuple[str, int] | None:
        """(stored text, key TTL in ms) for `value`, or None when it is not to be cached."""
        now = self.now_ms()
        if value is None:
            if policy.negative_ms is None:
                return None
            ttl = self.jitter(policy.negative_ms)
            return encode_entry(Entry("n", now + ttl, now + ttl)), ttl
        try:
            payload = encode_text(policy.codec, value)
        except Exception as exc:  # a programming error: say so loudly, but serve the value
            log.error("cache: cannot encode the value for %s, not caching it: %s", rkey, exc)
            return None
        ttl = self.jitter(policy.ttl_ms)
        total = ttl + self.jitter(policy.stale_ms)
        return encode_entry(Entry("v", now + ttl, now + total, payload)), total

    async def get(self, rkey: str) -> str | bytes | Failed | None:
        return await self.guard("GET", self.redis.get(rkey))

    async def put(self, rkey: str, value: Any, policy: Policy) -> bool:
        """Plain write (no lock involved); False when there was nothing to write or it failed."""
        encoded = self.encode(rkey, value, policy)
        if encoded is None:
            return False
        text, ttl_ms = encoded
        return await self.guard("SET", self.redis.set(rkey, text, px=ttl_ms)) is True

    async def put_unless_invalidated(
        self, rkey: str, marker_key: str, marker: str, value: Any, policy: Policy
    ) -> bool:
        """Writes the entry unless `rkey` was invalidated since its load began (the marker
        changed from `marker`); False when it was, or nothing was written."""
        encoded = self.encode(rkey, value, policy)
        if encoded is None:
            return False
        text, ttl_ms = encoded
        run = WRITE_UNLESS_INVALIDATED.run(self.redis, [rkey, marker_key], [text, ttl_ms, marker])
        return await self.guard("WRITE", run) == 1

    async def put_and_unlock(
        self, rkey: str, lock: str, claim: Claim, value: Any, policy: Policy
    ) -> None:
        """The miss write: the entry (unless invalidated since the load began) and the lock
        release in ONE command (just the release when there is nothing to cache)."""
        encoded = self.encode(rkey, value, policy)
        if encoded is None:
            await self.unlock(lock, claim.token)
            return
        text, ttl_ms = encoded
        keys = [rkey, lock, claim.marker_key]
        run = WRITE_AND_UNLOCK.run(self.redis, keys, [text, ttl_ms, claim.token, claim.marker])
        await self.guard("WRITE", run)

    async def invalidate(self, keys: list[tuple[str, str, str]]) -> bool:
        """Deletes entries and their locks and changes their markers, in ONE command:
        `keys` holds (value key, lock key, marker key) triples."""
        flat = [k for triple in keys for k in triple]
        run = INVALIDATE.run(self.redis, flat, [secrets.token_hex(12), MARKER_MS])
        return not isinstance(await self.guard("INVALIDATE", run), Failed)

    # -- the stampede lock ---------------------------------------------------------------

    async def lock(self, rkey: str, lock: str, marker_key: str) -> Claim:
        """Takes the lock unless the entry is fresh, in one command; see `Claim`."""
        token = secrets.token_hex(12)
        keys, args = [rkey, lock, marker_key], [str(self.now_ms()), token, str(self.lock_ms)]
        reply = await self.guard("LOCK", LOCK_UNLESS_FRESH.run(self.redis, keys, args))
        if isinstance(reply, Failed):
            return Claim(reply, token, marker_key)
        if not isinstance(reply, list) or not reply:
            log.warning("cache: unexpected lock reply type %s", type(reply).__name__)
            return Claim(FAILED, token, marker_key)
        marker = _text(reply[1]) if len(reply) > 1 else ""
        if reply[0] == 2 and len(reply) == 3 and isinstance(reply[2], str | bytes):
            return Claim(reply[2], token, marker_key, marker)
        return Claim(reply[0] == 1, token, marker_key, marker)

    async def unlock(self, lock: str, token: str) -> None:
        """Releases the lock if we still own it (it may have expired and been taken)."""
        await self.guard("UNLOCK", delete_if_equals(self.redis, lock, token))

    async def poll(self, rkey: str, lock: str, marker_key: str) -> tuple[Any, Any, str] | Failed:
        """(entry, lock holder, invalidation marker) in one `MGET`."""
        found = await self.guard("POLL", self.redis.mget(rkey, lock, marker_key))
        if isinstance(found, Failed):
            return found
        return found[0], found[1], _text(found[2])


def _text(raw: Any) -> str:
    """A marker as text ('' when absent)."""
    if raw is None:
        return ""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
