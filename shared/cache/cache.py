"""Cache-aside over the Upstash REST client: typed, stampede-proof, never failing a request.

    cache = Cache(redis, namespace="cache", ttl="5m", stale_ttl="1h", negative_ttl="30s")

    order = await cache.get_or_load(f"order:{order_id}", lambda: repo.get(order_id), codec=Order)
    result = await cache.get_or_load_result("stats", load_stats)   # value + X-Cache status
    await cache.invalidate(f"order:{order_id}", "stats")          # one command

Guarantees (the seed's `getCached` has none of them):
- falsy values (`0`, `""`, `[]`, `False`) are hits; a loader returning None means
  "not found", cached for `negative_ttl` when set (off by default);
- a hit is ONE `GET`, auto-pipelined with the request's other commands;
- a miss: concurrent callers in one request share one load (single flight);
  across requests and instances a `SET NX PX` lock picks one loader, the others
  poll briefly and load themselves after `wait_timeout` (a crashed lock holder
  delays nobody for longer than that); the write releases the lock in the same
  command (a Lua script);
- `invalidate` defeats the write of every load of the key that began before it
  (a compare-and-set on a per-key invalidation marker): a value read before a
  DELETE is never cached after it;
- `stale_ttl`: past its TTL an entry is served at once (STALE) and refreshed in
  the background (`shared.background.defer`), once across concurrent requests;
- TTLs get a few percent of jitter so entries written together expire apart;
- every Redis call is bounded by `timeout`; a Redis error or timeout never fails
  `get_or_load`: the loader runs and the status says BYPASS. An entry that no
  longer decodes (changed schema) is a miss, logged and replaced.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypedDict, TypeVar, Unpack

from shared.background import defer
from shared.cache.codec import CodecLike, as_codec
from shared.cache.entry import check_key, gen_key, lock_key, value_key
from shared.cache.flight import SingleFlight
from shared.cache.result import CacheResult
from shared.cache.store import Claim, EntryStore, Failed, Policy, duration_ms, poll_delays
from shared.durations import Duration
from shared.redis import Redis
from shared.scope import current_scope

log = logging.getLogger(__name__)

T = TypeVar("T")
Loader = Callable[[], Awaitable[T]]


class LoadOptions(TypedDict, total=False):
    """Per-call overrides of the cache's defaults for `get_or_load` and `get_or_load_result`
    (absent or None: the `Cache(...)` default)."""

    ttl: Duration | None
    stale_ttl: Duration | None
    negative_ttl: Duration | None
    codec: CodecLike[Any] | None


def _refreshing() -> builtins.set[str]:
    return builtins.set()


class Cache:
    """Cache-aside for one namespace of keys (see the module docstring for guarantees).

    Build it once per process from the shared `Redis` client; it keeps no
    per-request state outside the current request scope.

        cache = Cache(redis, namespace="api", ttl="60s", stale_ttl="10m")
        result = await cache.get_or_load_result(f"user:{uid}", lambda: fetch_user(uid))
        response.headers["X-Cache"] = result.status       # HIT | MISS | STALE | BYPASS

    `timeout` bounds every Redis call of the cache; `lock_ttl` is how long a
    loader holds the stampede lock; `wait_timeout` (default: `lock_ttl`) how long
    the others poll before loading themselves; `jitter` the fraction of the TTL
    added at random; `now_ms` the clock freshness is judged by (tests inject one).
    """

    def __init__(
        self,
        redis: Redis[Any],
        *,
        namespace: str = "cache",
        ttl: Duration = "1m",
        stale_ttl: Duration = 0,
        negative_ttl: Duration | None = None,
        codec: CodecLike[Any] | None = None,
        timeout: Duration = "1s",
        lock_ttl: Duration = "2s",
        wait_timeout: Duration | None = None,
        jitter: float = 0.05,
        now_ms: Callable[[], int] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.namespace = check_key(namespace, "namespace")
        if not 0 <= jitter <= 0.5:
            raise ValueError(f"jitter must be a fraction of the TTL in [0, 0.5], got {jitter!r}")
        self._jitter = jitter
        # The module's generator unless one is given: building a Random() here would read
        # entropy, which Workers refuse at import time (when services may be built).
        self._uniform = rng.uniform if rng is not None else random.uniform
        self._default = self._policy_of(ttl, stale_ttl, negative_ttl, codec)
        lock_ms = duration_ms("lock_ttl", lock_ttl)
        wait_ms = lock_ms if wait_timeout is None else duration_ms("wait_timeout", wait_timeout)
        self._poll_delays = poll_delays(wait_ms)
        self._wait_s = wait_ms / 1000
        self._store = EntryStore(
            redis,
            timeout=duration_ms("timeout", timeout) / 1000,
            lock_ms=lock_ms,
            now_ms=now_ms or (lambda: time.time_ns() // 1_000_000),
            jitter=self._jittered,
        )
        self._flight = SingleFlight()

    def __repr__(self) -> str:
        return f"Cache(namespace={self.namespace!r}, ttl_ms={self._default.ttl_ms})"

    def key(self, key: str) -> str:
        """The Redis key holding `key` (validated: `ValueError` when empty, too long, spaced)."""
        return value_key(self.namespace, key)

    def _lock(self, rkey: str) -> str:
        return lock_key(rkey, self.namespace)

    def _marker(self, rkey: str) -> str:
        return gen_key(rkey, self.namespace)

    # -- policy ----------------------------------------------------------------------------

    def _policy_of(
        self,
        ttl: Duration,
        stale_ttl: Duration,
        negative_ttl: Duration | None,
        codec: CodecLike[Any] | None,
    ) -> Policy:
        negative = None if negative_ttl is None else duration_ms("negative_ttl", negative_ttl)
        stale = duration_ms("stale_ttl", stale_ttl, allow_zero=True)
        return Policy(duration_ms("ttl", ttl), stale, negative, as_codec(codec))

    def _policy(
        self,
        ttl: Duration | None = None,
        stale_ttl: Duration | None = None,
        negative_ttl: Duration | None = None,
        codec: CodecLike[Any] | None = None,
    ) -> Policy:
        d = self._default
        if ttl is None and stale_ttl is None and negative_ttl is None and codec is None:
            return d
        return Policy(
            d.ttl_ms if ttl is None else duration_ms("ttl", ttl),
            d.stale_ms
            if stale_ttl is None
            else duration_ms("stale_ttl", stale_ttl, allow_zero=True),
            d.negative_ms if negative_ttl is None else duration_ms("negative_ttl", negative_ttl),
            d.codec if codec is None else as_codec(codec),
        )

    def _jittered(self, ms: int) -> int:
        return ms + round(ms * self._uniform(0, self._jitter))

    # -- public API ------------------------------------------------------------------------

    async def get(self, key: str, *, codec: CodecLike[Any] | None = None) -> Any:
        """The cached value (fresh or stale), or None when absent, "not found", undecodable
        or Redis is unreachable. One `GET`."""
        rkey = self.key(key)
        raw = await self._store.get(rkey)
        if isinstance(raw, Failed):
            return None
        found = self._store.read(rkey, raw, self._policy(codec=codec))
        return None if found is None else found.value

    async def set(
        self,
        key: str,
        value: Any,
        *,
        ttl: Duration | None = None,
        stale_ttl: Duration | None = None,
        codec: CodecLike[Any] | None = None,
    ) -> bool:
        """Writes `value` (None: a "not found" entry, if negative caching is on).

        Returns False when Redis failed (logged) or there was nothing to write.
        """
        rkey = self.key(key)
        return await self._store.put(rkey, value, self._policy(ttl, stale_ttl, codec=codec))

    async def invalidate(self, *keys: str) -> bool:
        """Deletes the entries of `keys` in ONE command, and defeats the write of any load
        of them that began before (its value may predate the change that invalidates).
        False when Redis failed (logged): the entries then live until their TTL."""
        if not keys:
            return True
        rkeys = [self.key(k) for k in keys]
        return await self._store.invalidate([(r, self._lock(r), self._marker(r)) for r in rkeys])

    async def get_or_load(self, key: str, loader: Loader[T], **options: Unpack[LoadOptions]) -> T:
        """The cached value, else `await loader()` (then cached). A loader returning None
        means "not found". Never raises for Redis trouble; the loader's own exceptions
        propagate (and nothing is cached). `options`: `ttl`, `stale_ttl`, `negative_ttl`,
        `codec` for this call (`LoadOptions`)."""
        return (await self.get_or_load_result(key, loader, **options)).value

    async def get_or_load_result(
        self, key: str, loader: Loader[T], **options: Unpack[LoadOptions]
    ) -> CacheResult[T]:
        """Like `get_or_load`, with the status for an `X-Cache` header."""
        rkey = self.key(key)
        policy = self._policy(**options)
        return await self._flight.run(rkey, lambda: self._lookup_or_load(rkey, loader, policy))

    # -- the paths -------------------------------------------------------------------------

    async def _lookup_or_load(self, rkey: str, loader: Loader[T], policy: Policy) -> CacheResult[T]:
        raw = await self._store.get(rkey)
        if isinstance(raw, Failed):
            return CacheResult(await loader(), "BYPASS")
        found = self._store.read(rkey, raw, policy)
        if found is not None and not found.stale:
            return CacheResult(found.value, "HIT")
        if found is not None:
            self._refresh_later(rkey, loader, policy)
            return CacheResult(found.value, "STALE")
        return await self._load_once(rkey, loader, policy)

    async def _load_once(self, rkey: str, loader: Loader[T], policy: Policy) -> CacheResult[T]:
        """Miss: take the lock and load, or wait for the lock holder's write."""
        lock = self._lock(rkey)
        claim = await self._store.lock(rkey, lock, self._marker(rkey))
        won = claim.outcome
        if isinstance(won, Failed):
            return CacheResult(await loader(), "BYPASS")
        if won is True:
            return CacheResult(await self._load_locked(rkey, loader, policy, claim), "MISS")
        if won is not False:  # written meanwhile; undecodable (old schema): load and replace
            found = self._store.read(rkey, won, policy)
            if found is not None:
                return CacheResult(found.value, "HIT")
            return await self._load_unlocked(rkey, loader, policy, claim.marker)
        marker = claim.marker
        failed = False
        # Counted (the clock may stand still between I/O on Workers) and clocked: a slow
        # Redis must not add each poll's latency to the wait (23 polls for 2 s). Only the
        # polls run under the deadline, never the loader.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._wait_s):
                for delay in self._poll_delays:
                    await asyncio.sleep(delay)
                    polled = await self._store.poll(rkey, lock, claim.marker_key)
                    if isinstance(polled, Failed):
                        failed = True
                        break
                    raw, holder, marker = polled
                    found = self._store.read(rkey, raw, policy)
                    if found is not None:
                        return CacheResult(found.value, "HIT")
                    if holder is None:
                        break  # released without a write (loader failed, "not found", invalidated)
        if failed:
            return CacheResult(await loader(), "BYPASS")
        return await self._load_unlocked(rkey, loader, policy, marker)

    async def _load_unlocked(
        self, rkey: str, loader: Loader[T], policy: Policy, marker: str
    ) -> CacheResult[T]:
        """Loads without the lock; `marker` is the invalidation marker read before the load."""
        value = await loader()
        await self._store.put_unless_invalidated(rkey, self._marker(rkey), marker, value, policy)
        return CacheResult(value, "MISS")

    async def _load_locked(self, rkey: str, loader: Loader[T], policy: Policy, claim: Claim) -> T:
        lock = self._lock(rkey)
        try:
            value = await loader()
        except BaseException:
            defer(self._store.unlock(lock, claim.token))  # do not delay the error
            raise
        await self._store.put_and_unlock(rkey, lock, claim, value, policy)
        return value

    def _refresh_later(self, rkey: str, loader: Loader[Any], policy: Policy) -> None:
        refreshing = current_scope().state(self, _refreshing)
        if rkey in refreshing:
            return
        refreshing.add(rkey)
        defer(self._refresh(rkey, loader, policy, refreshing))

    async def _refresh(
        self, rkey: str, loader: Loader[Any], policy: Policy, refreshing: builtins.set[str]
    ) -> None:
        """Stale-while-revalidate: reload under the lock (one refresher across requests)."""
        try:
            claim = await self._store.lock(rkey, self._lock(rkey), self._marker(rkey))
            if claim.outcome is not True:
                return
            try:
                await self._load_locked(rkey, loader, policy, claim)
            except Exception as exc:
                log.warning("cache: background refresh of %s failed: %s", rkey, type(exc).__name__)
        finally:
            refreshing.discard(rkey)
