"""The four algorithms: what each asks Redis (one script call) and how it reads the answer.

Build them with `fixed_window`, `sliding_window`, `token_bucket` and
`cached_fixed_window`; hand one to `Ratelimit`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from shared.durations import Duration, parse_duration_ms
from shared.errors import RedisResponseError
from shared.ratelimit import lua
from shared.ratelimit.expiring_lru import ExpiringLRU
from shared.ratelimit.result import Decision
from shared.ratelimit.window_math import sliding_retry_at, token_bucket_retry_at, window_index
from shared.redis import Redis


@dataclass(frozen=True, slots=True)
class Context:
    """What the limiter lends an algorithm for one call."""

    redis: Redis[Any]
    dynamic_key: str | None
    counters: ExpiringLRU[tuple[int, int]]
    defer: Callable[[Awaitable[Any]], Awaitable[Any]]

    def extra_keys(self) -> list[str]:
        return [self.dynamic_key] if self.dynamic_key else []


class Algorithm(Protocol):
    """A limiter algorithm; `key` is `{prefix}:{identifier}`."""

    @property
    def limit(self) -> int: ...

    @property
    def policy_window_ms(self) -> int: ...

    async def decide(self, ctx: Context, key: str, rate: int, now_ms: int) -> Decision: ...

    def keys(self, key: str, now_ms: int) -> list[str]: ...


def _ints(reply: Any, count: int) -> list[int]:
    """The script's integer array, or a typed error when the server sent something else."""
    if not isinstance(reply, list) or len(reply) != count:
        raise RedisResponseError(200, "unexpected rate-limit script reply")
    try:
        return [int(item) for item in reply]
    except (TypeError, ValueError):
        raise RedisResponseError(200, "unexpected rate-limit script reply") from None


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _window_ms(name: str, value: Duration) -> int:
    ms = parse_duration_ms(value)
    if ms < 1:
        raise ValueError(f"{name} must be at least 1 ms, got {value!r}")
    return ms


@dataclass(frozen=True, slots=True)
class _Windowed:
    """`tokens` per window of `window_ms`: what the window algorithms share."""

    tokens: int
    window_ms: int

    @property
    def limit(self) -> int:
        return self.tokens

    @property
    def policy_window_ms(self) -> int:
        return self.window_ms


@dataclass(frozen=True, slots=True)
class FixedWindow(_Windowed):
    """`tokens` per fixed window; cheap, but allows 2x bursts around a window edge."""

    async def _run(self, ctx: Context, window_key: str, rate: int) -> list[int]:
        args = [self.tokens, self.window_ms, rate]
        keys = [window_key, *ctx.extra_keys()]
        return _ints(await lua.FIXED_WINDOW.run(ctx.redis, keys, args), 3)

    async def decide(self, ctx: Context, key: str, rate: int, now_ms: int) -> Decision:
        bucket = window_index(now_ms, self.window_ms)
        reset = (bucket + 1) * self.window_ms
        allowed, used, limit = await self._run(ctx, f"{key}:{bucket}", rate)
        remaining = max(0, limit - used)
        blocked = reset if not allowed and remaining < 1 else None
        return Decision(bool(allowed), limit, remaining, reset, blocked)

    def keys(self, key: str, now_ms: int) -> list[str]:
        return [f"{key}:{window_index(now_ms, self.window_ms)}"]


@dataclass(frozen=True, slots=True)
class SlidingWindow(_Windowed):
    """`tokens` per rolling window, approximated from two fixed windows (no edge bursts)."""

    async def decide(self, ctx: Context, key: str, rate: int, now_ms: int) -> Decision:
        w = window_index(now_ms, self.window_ms)
        keys = [f"{key}:{w}", f"{key}:{w - 1}", *ctx.extra_keys()]
        args = [self.tokens, now_ms, self.window_ms, rate]
        reply = await lua.SLIDING_WINDOW.run(ctx.redis, keys, args)
        allowed, current, previous, weighted, limit = _ints(reply, 5)
        remaining = max(0, limit - current - weighted)
        if allowed:
            return Decision(True, limit, remaining, (w + 1) * self.window_ms)
        retry = sliding_retry_at(now_ms, self.window_ms, limit, current, previous, rate)
        blocked = None
        if remaining < 1:
            blocked = sliding_retry_at(now_ms, self.window_ms, limit, current, previous, 1)
        return Decision(False, limit, remaining, retry, blocked)

    def keys(self, key: str, now_ms: int) -> list[str]:
        w = window_index(now_ms, self.window_ms)
        return [f"{key}:{w}", f"{key}:{w - 1}"]


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """`max_tokens` burst, refilled by `refill_rate` every `interval_ms`."""

    refill_rate: int
    interval_ms: int
    max_tokens: int

    @property
    def limit(self) -> int:
        return self.max_tokens

    @property
    def policy_window_ms(self) -> int:
        """How long an empty bucket takes to fill up."""
        return math.ceil(self.max_tokens / self.refill_rate) * self.interval_ms

    async def decide(self, ctx: Context, key: str, rate: int, now_ms: int) -> Decision:
        keys = [key, *ctx.extra_keys()]
        args = [self.max_tokens, self.interval_ms, self.refill_rate, now_ms, rate]
        reply = await lua.TOKEN_BUCKET.run(ctx.redis, keys, args)
        allowed, tokens, refilled_at, limit = _ints(reply, 4)
        next_refill = refilled_at + self.interval_ms
        if allowed:
            return Decision(True, limit, max(0, tokens), next_refill)
        retry = token_bucket_retry_at(refilled_at, self.interval_ms, self.refill_rate, tokens, rate)
        blocked = next_refill if tokens < 1 else None
        return Decision(False, limit, max(0, tokens), retry, blocked)

    def keys(self, key: str, now_ms: int) -> list[str]:
        return [key]


@dataclass(frozen=True, slots=True)
class CachedFixedWindow(FixedWindow):
    """A fixed window whose counter is also kept in memory: once a window is known,
    decisions are local and Redis is updated in the background (`result.pending`).

    Faster, but approximate across instances (each decides on its own copy until the
    background write returns the shared count). Keys and TTLs are the fixed window's.
    """

    async def _sync(self, ctx: Context, window_key: str, rate: int, reset: int) -> None:
        _, used, limit = await self._run(ctx, window_key, rate)
        ctx.counters.set(window_key, (used, limit), reset)

    async def decide(self, ctx: Context, key: str, rate: int, now_ms: int) -> Decision:
        bucket = window_index(now_ms, self.window_ms)
        reset = (bucket + 1) * self.window_ms
        window_key = f"{key}:{bucket}"
        cached = ctx.counters.get(window_key, now_ms) if rate > 0 else None
        if cached is not None:
            used, limit = cached
            if used + rate > limit:
                blocked = reset if used >= limit else None
                return Decision(False, limit, max(0, limit - used), reset, blocked, "cache_block")
            ctx.counters.set(window_key, (used + rate, limit), reset)
            pending = ctx.defer(self._sync(ctx, window_key, rate, reset))
            return Decision(True, limit, limit - used - rate, reset, pending=pending)
        allowed, used, limit = await self._run(ctx, window_key, rate)
        ctx.counters.set(window_key, (used, limit), reset)
        remaining = max(0, limit - used)
        blocked = reset if not allowed and remaining < 1 else None
        return Decision(bool(allowed), limit, remaining, reset, blocked)


def fixed_window(tokens: int, window: Duration) -> FixedWindow:
    """At most `tokens` per fixed `window` (`"10 s"`, `"1m"`, `60`...)."""
    return FixedWindow(_positive_int("tokens", tokens), _window_ms("window", window))


def sliding_window(tokens: int, window: Duration) -> SlidingWindow:
    """At most `tokens` per rolling `window` (the approximated two-window kind)."""
    return SlidingWindow(_positive_int("tokens", tokens), _window_ms("window", window))


def token_bucket(refill_rate: int, interval: Duration, max_tokens: int) -> TokenBucket:
    """A bucket of `max_tokens` refilled by `refill_rate` tokens every `interval`."""
    return TokenBucket(
        _positive_int("refill_rate", refill_rate),
        _window_ms("interval", interval),
        _positive_int("max_tokens", max_tokens),
    )


def cached_fixed_window(tokens: int, window: Duration) -> CachedFixedWindow:
    """A fixed window decided from memory once known, synced to Redis in the background."""
    return CachedFixedWindow(_positive_int("tokens", tokens), _window_ms("window", window))
