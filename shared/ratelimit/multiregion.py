"""`MultiRegionRatelimit`: one budget over several Redis databases, as @upstash/ratelimit's.

An edge function far from its one Redis pays a long round trip per request. With a
database per region, every decision is sent to all of them and the first to answer
decides; the others are brought up to date in the background (`shared.background`,
i.e. `waitUntil` on Workers, after the response on Vercel).

Layout (upstream's, so a TypeScript service using `MultiRegionRatelimit` on the same
databases and prefix shares the budget): each window is a HASH
`{prefix}:{identifier}:{floor(now / window)}` whose fields are request ids (16 random
characters) and whose values are the request weights; a window's count is the sum.
The synchronisation copies to each region the ids the others recorded and it lacks,
unless that region's window is already full (upstream's rule).
The hashes are not the single-region limiter's counters (strings): use another
prefix than a single-region `Ratelimit` on the same database.

Over-admission bound. Every region sees every request and admits only what fits its
own record, so when requests come one after another (each synchronised before the
next) the limit holds exactly. Requests in flight at the same time may be ordered
differently by two regions, and a region that was unreachable has missed requests
until the next synchronisation reaches it; then a request admitted by the first
region to answer can be one another region denied. Each region still admits at most
`limit` per window of what it recorded, so with `N` regions a window admits at most
`N * limit`, and in practice at most `limit` plus the requests that were in flight
concurrently when the budget ran out. A region that never answers is skipped: the
decision comes from the others.

    ratelimit = MultiRegionRatelimit([redis_eu, redis_us, redis_ap], sliding_window(10, "10 s"))
    result = await ratelimit.limit(ip)   # result.pending: the synchronisation
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.durations import Duration
from shared.errors import RedisResponseError
from shared.ratelimit import lua
from shared.ratelimit.algorithms import Context, FixedWindow, SlidingWindow
from shared.ratelimit.limiter import (
    DEFAULT_PREFIX,
    Clock,
    Ratelimit,
    Sleep,
    check_options,
    system_clock_ms,
)
from shared.ratelimit.protection import Protection
from shared.ratelimit.result import Decision, OnError
from shared.ratelimit.window_math import sliding_retry_at, window_index
from shared.redis import Redis

_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def random_request_id() -> str:
    """16 random letters and digits: the field a request is recorded under (as upstream)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


@dataclass(frozen=True, slots=True)
class _Answer:
    """One region's reply: did it admit, and the current window's ids and weights."""

    allowed: bool
    other: int  # fixed window: used after the call; sliding: the previous window's sum
    fields: dict[str, int]


def _parse(reply: Any) -> _Answer:
    bad = RedisResponseError(200, "unexpected multi-region script reply")
    if not isinstance(reply, list) or len(reply) != 3 or not isinstance(reply[2], list):
        raise bad
    flat = reply[2]
    if len(flat) % 2:
        raise bad
    try:
        fields = {str(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        return _Answer(bool(int(reply[0])), int(reply[1]), fields)
    except (TypeError, ValueError):
        raise bad from None


async def _first_success(tasks: Sequence[asyncio.Future[_Answer]]) -> _Answer:
    """The first answer that is not an error (Promise.any); the last error when all fail."""
    pending: set[asyncio.Future[_Answer]] = set(tasks)
    error: BaseException | None = None
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.cancelled():
                continue
            exc = task.exception()
            if exc is None:
                return task.result()
            error = exc
    if error is None:
        raise RedisResponseError(0, "every region was cancelled")
    raise error


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


@dataclass(frozen=True, slots=True)
class _MultiRegion:
    """The multi-region form of a fixed or sliding window (an `Algorithm` for `Ratelimit`)."""

    base: FixedWindow | SlidingWindow
    regions: tuple[Redis[Any], ...]
    request_id: Callable[[], str]

    @property
    def limit(self) -> int:
        return self.base.limit

    @property
    def policy_window_ms(self) -> int:
        return self.base.policy_window_ms

    @property
    def _sliding(self) -> bool:
        return isinstance(self.base, SlidingWindow)

    def keys(self, key: str, now_ms: int) -> list[str]:
        return self.base.keys(key, now_ms)

    async def _ask(
        self, redis: Redis[Any], key: str, request_id: str, rate: int, now: int
    ) -> _Answer:
        window = self.base.window_ms
        w = window_index(now, window)
        if self._sliding:
            keys = [f"{key}:{w}", f"{key}:{w - 1}"]
            args: list[str | int] = [self.limit, now, window, request_id, rate]
            return _parse(await lua.MULTI_SLIDING_WINDOW.run(redis, keys, args))
        args = [request_id, window, rate, self.limit]
        return _parse(await lua.MULTI_FIXED_WINDOW.run(redis, [f"{key}:{w}"], args))

    async def _sync(
        self, window_key: str, tasks: Sequence[asyncio.Future[_Answer]], ttl_ms: int
    ) -> None:
        """Copies to every region that answered the ids the other regions recorded."""
        answers = await asyncio.gather(*tasks, return_exceptions=True)
        union: dict[str, int] = {}
        for answer in answers:
            if isinstance(answer, _Answer):
                union.update(answer.fields)
        writes = []
        for redis, answer in zip(self.regions, answers, strict=True):
            if not isinstance(answer, _Answer):
                continue  # unreachable now: a later request's synchronisation catches it up
            missing = [(i, w) for i, w in union.items() if i not in answer.fields]
            if missing:
                args: list[str | int] = [ttl_ms, self.limit]
                for request_id, weight in missing:
                    args += [request_id, weight]
                writes.append(lua.MULTI_SYNC.run(redis, [window_key], args))
        await asyncio.gather(*writes)

    async def decide(self, ctx: Context, key: str, rate: int, now_ms: int) -> Decision:
        window = self.base.window_ms
        w = window_index(now_ms, window)
        reset = (w + 1) * window
        request_id = self.request_id()
        tasks = [
            asyncio.ensure_future(self._ask(redis, key, request_id, rate, now_ms))
            for redis in self.regions
        ]
        for task in tasks:  # a slow region's failure after the answer is expected, not news
            task.add_done_callback(_retrieve)
        ttl = window * 2 + 1000 if self._sliding else window
        # Deferred before the first answer: a timeout of the decision must not skip it.
        pending = ctx.defer(self._sync(f"{key}:{w}", tasks, ttl)) if rate != 0 else None
        answer = await _first_success(tasks)
        current = sum(answer.fields.values())
        if not self._sliding:
            remaining = max(0, self.limit - current)
            blocked = reset if not answer.allowed and remaining < 1 else None
            return Decision(answer.allowed, self.limit, remaining, reset, blocked, pending=pending)
        previous = answer.other
        share = math.ceil(previous * (1 - (now_ms % window) / window))
        remaining = max(0, self.limit - current - share)
        if answer.allowed:
            return Decision(True, self.limit, remaining, reset, pending=pending)
        retry = sliding_retry_at(now_ms, window, self.limit, current, previous, max(rate, 1))
        blocked = None
        if remaining < 1:
            blocked = sliding_retry_at(now_ms, window, self.limit, current, previous, 1)
        return Decision(False, self.limit, remaining, retry, blocked, pending=pending)


class MultiRegionRatelimit(Ratelimit):
    """`Ratelimit` over several regions; see the module doc for the layout and the bound.

        ratelimit = MultiRegionRatelimit([eu, us], fixed_window(100, "1 m"), timeout=0.5)

    Fixed and sliding windows only (as upstream). Analytics go to the first database
    (as upstream), and so do the `protection` lists. `on_error` applies when no region
    answers in time.
    """

    def __init__(
        self,
        redis: Iterable[Redis[Any]],
        limiter: FixedWindow | SlidingWindow,
        prefix: str = DEFAULT_PREFIX,
        *,
        timeout: Duration = 1.0,
        on_error: OnError = "allow",
        ephemeral_cache: bool = True,
        cache_size: int = 10_000,
        analytics: bool = False,
        analytics_retention: Duration = "90d",
        deny_list: Iterable[str] = (),
        protection: Protection | None = None,
        clock: Clock = system_clock_ms,
        sleep: Sleep = asyncio.sleep,
        request_id: Callable[[], str] = random_request_id,
    ) -> None:
        clients = list(redis)
        if not clients:
            raise ValueError("MultiRegionRatelimit needs at least one Redis")
        if type(limiter) not in (FixedWindow, SlidingWindow):  # not the cached fixed window
            raise ValueError("multi-region limiting supports fixed_window and sliding_window")
        _, _, seconds = check_options(prefix, on_error, timeout)
        regions = tuple(
            client.with_options(timeout=seconds, total_timeout=True) for client in clients
        )
        super().__init__(
            clients[0],
            _MultiRegion(limiter, regions, request_id),
            prefix,
            timeout=timeout,
            on_error=on_error,
            ephemeral_cache=ephemeral_cache,
            cache_size=cache_size,
            analytics=analytics,
            analytics_retention=analytics_retention,
            deny_list=deny_list,
            protection=protection,
            clock=clock,
            sleep=sleep,
        )
        self.regions = regions

    def __repr__(self) -> str:
        return f"MultiRegionRatelimit({len(self.regions)} regions, prefix={self.prefix!r})"

    async def _delete_everywhere(self, keys: list[str]) -> None:
        """`reset_used_tokens` forgets the same windows in every region, at once."""
        await asyncio.gather(*(region.delete(*keys) for region in self.regions))
