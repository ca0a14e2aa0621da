"""`ConcurrencyLimit`: at most N requests in flight per identifier, with leases.

A rate limit counts requests per window; an expensive route also needs a bound on how
many run at once (upstream's open issue ratelimit-js#71; no Upstash SDK has one).
`acquire` takes a slot with a lease (one atomic script: prune expired leases, count,
add), `release` gives back only the caller's own lease, `renew` extends a long
holder's lease. A holder that crashes never releases: its slot frees when the lease
ends, so choose a lease longer than the route's worst case (the route's deadline).

    limit = ConcurrencyLimit(redis, 4, lease="30 s")
    lease = await limit.acquire(api_key)
    if not lease.success:
        return json_response({"error": "Too many concurrent requests"}, 429, limit.headers(lease))
    try:
        ...
    finally:
        await limit.release(lease)

Layout: a ZSET `{prefix}:{identifier}` of random lease ids scored by expiry (ms), with
a TTL that follows the latest lease. Time is the caller's clock, as in the limiter.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from shared.durations import Duration, parse_duration_ms
from shared.errors import TransportTimeout, UpstashError
from shared.ratelimit import lua
from shared.ratelimit.headers import rate_limit_headers
from shared.ratelimit.limiter import Clock, check_identifier, check_options, system_clock_ms
from shared.ratelimit.result import OnError, RateLimitResult, Reason
from shared.redis import Redis

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY_PREFIX = "@upstash/ratelimit-concurrency"
RETRY_HINT_MS = 1_000
"""A denied caller is told to retry after this long (or at the earliest lease expiry,
if sooner): slots usually free when a request finishes, long before its lease ends."""


@dataclass(frozen=True, slots=True)
class Lease:
    """One `acquire()` answer; `lease_id` is set only when a slot is held in Redis.

    `remaining` is the free slots after the call, `reset` (Unix ms) the lease expiry on
    success, or on a denial when to retry. `reason` as `RateLimitResult.reason`.
    """

    success: bool
    identifier: str
    limit: int
    remaining: int
    reset: int
    lease_id: str | None = None
    reason: Reason | None = None

    def as_result(self) -> RateLimitResult:
        return RateLimitResult(self.success, self.limit, self.remaining, self.reset, self.reason)


def _new_lease_id() -> str:
    return secrets.token_urlsafe(16)


class ConcurrencyLimit:
    """At most `max_concurrent` leases per identifier; see the module doc.

    `on_error` says what a slow (`timeout`) or failing Redis means, as for `Ratelimit`:
    `"allow"` lets the request run without a lease, `"deny"` refuses it. `acquire`
    never raises for Redis trouble, only for bad arguments.
    """

    def __init__(
        self,
        redis: Redis[Any],
        max_concurrent: int,
        *,
        lease: Duration = "30 s",
        prefix: str = DEFAULT_CONCURRENCY_PREFIX,
        timeout: Duration = 1.0,
        on_error: OnError = "allow",
        clock: Clock = system_clock_ms,
        lease_id: Callable[[], str] = _new_lease_id,
    ) -> None:
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int):
            raise ValueError(f"max_concurrent must be an integer >= 1, got {max_concurrent!r}")
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be an integer >= 1, got {max_concurrent!r}")
        self.prefix, self.on_error, self.timeout = check_options(prefix, on_error, timeout)
        self.lease_ms = parse_duration_ms(lease)
        if self.lease_ms < 1:
            raise ValueError(f"lease must be at least 1 ms, got {lease!r}")
        self.max_concurrent = max_concurrent
        # `timeout` bounds each call as a whole (a NOSCRIPT fallback included): no timer here.
        self._redis = redis.with_options(timeout=self.timeout, total_timeout=True)
        self._clock = clock
        self._lease_id = lease_id

    def __repr__(self) -> str:
        return f"ConcurrencyLimit({self.max_concurrent}, lease={self.lease_ms} ms)"

    def _key(self, identifier: str) -> str:
        return f"{self.prefix}:{identifier}"

    async def acquire(self, identifier: str) -> Lease:
        """Takes a slot for `identifier` if one is free (one round trip)."""
        key = self._key(check_identifier(identifier))
        now = self._clock()
        lease_id = self._lease_id()
        args: list[str | int] = [now, self.lease_ms, self.max_concurrent, lease_id]
        reason: Reason
        try:
            reply = await lua.CONCURRENCY_ACQUIRE.run(self._redis, [key], args)
            acquired, held, earliest = (int(item) for item in reply)
        except (TimeoutError, TransportTimeout):
            reason = "timeout"
        except UpstashError as exc:
            reason = "error"
            log.warning("concurrency limit: Redis failed (%s): %s", type(exc).__name__, exc)
        except Exception as exc:
            reason = "error"  # an unexpected reply: still Redis trouble to the caller
            log.warning("concurrency limit: Redis call failed (%s)", type(exc).__name__)
        else:
            remaining = max(0, self.max_concurrent - held)
            if acquired:
                return Lease(
                    True, identifier, self.max_concurrent, remaining, now + self.lease_ms, lease_id
                )
            retry = now + RETRY_HINT_MS
            if earliest:
                retry = min(retry, max(now + 1, earliest))
            return Lease(False, identifier, self.max_concurrent, 0, retry)
        allowed = self.on_error == "allow"
        return Lease(allowed, identifier, self.max_concurrent, 0, now, None, reason)

    async def release(self, lease: Lease) -> bool:
        """Gives the slot back; True when this lease was still held (only its own id is
        removed, so a late release never frees a slot another request took since)."""
        if lease.lease_id is None:
            return False
        removed = await self._redis.zrem(self._key(lease.identifier), lease.lease_id)
        return bool(removed)

    async def renew(self, lease: Lease) -> Lease | None:
        """Extends a held lease by the lease duration from now; None when it is gone."""
        if lease.lease_id is None:
            return None
        now = self._clock()
        args: list[str | int] = [now, self.lease_ms, lease.lease_id]
        renewed = await lua.CONCURRENCY_RENEW.run(self._redis, [self._key(lease.identifier)], args)
        if int(renewed) != 1:
            return None
        return Lease(
            True,
            lease.identifier,
            lease.limit,
            lease.remaining,
            now + self.lease_ms,
            lease.lease_id,
        )

    async def held(self, identifier: str) -> int:
        """Leases currently held (expired ones not counted)."""
        key = self._key(check_identifier(identifier))
        count = await self._redis.zcount(key, f"({self._clock()}", "+inf")
        return int(count)

    @asynccontextmanager
    async def slot(self, identifier: str) -> AsyncIterator[Lease]:
        """`acquire` ... `release` around a block; check `lease.success` inside."""
        lease = await self.acquire(identifier)
        try:
            yield lease
        finally:
            if lease.lease_id is not None:
                try:
                    await self.release(lease)
                except UpstashError as exc:  # the lease will expire on its own
                    log.warning("concurrency limit: release failed (%s)", type(exc).__name__)

    def headers(self, lease: Lease) -> dict[str, str]:
        """`X-RateLimit-*`, `RateLimit-Policy` (q = slots, w = lease) and `Retry-After`."""
        window_s = max(1, -(-self.lease_ms // 1000))
        return rate_limit_headers(
            lease.as_result(), window_s, now_ms=self._clock(), policy="concurrency"
        )
