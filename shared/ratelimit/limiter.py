"""`Ratelimit`: the @upstash/ratelimit API over our Redis client, interoperable with it.

Clock skew: every algorithm takes `now_ms` from the caller's clock (an argument of
the Lua script), as upstream does. Edge instances whose clocks disagree by `d` ms
pick their window `d` ms early or late, so near a window edge an instance may still
count into the old window; the bound per window holds, but the edge moves by up to
`d`. The alternative, Redis `TIME`, costs nothing more but ties the decision to one
server (and upstream's keys use the caller's clock): keep the hosts NTP-synced.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from shared.background import defer
from shared.durations import Duration, parse_duration_ms
from shared.errors import TransportTimeout, UpstashError
from shared.ratelimit.algorithms import (
    Algorithm,
    Context,
    cached_fixed_window,
    fixed_window,
    sliding_window,
    token_bucket,
)
from shared.ratelimit.analytics import record_event
from shared.ratelimit.expiring_lru import ExpiringLRU
from shared.ratelimit.headers import rate_limit_headers
from shared.ratelimit.result import DENY_REASONS, Decision, OnError, RateLimitResult, Reason
from shared.redis import Redis

if TYPE_CHECKING:
    from shared.ratelimit.protection import Protection

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "@upstash/ratelimit"
DYNAMIC_LIMIT_SUFFIX = ":dynamic:global"
Clock = Callable[[], int]
Sleep = Callable[[float], Awaitable[Any]]


def system_clock_ms() -> int:
    return int(time.time() * 1000)


def check_options(
    prefix: object, on_error: object, timeout: Duration
) -> tuple[str, OnError, float]:
    """What every limiter checks alike: `(prefix, on_error, timeout in seconds)`, or
    `ValueError` naming the bad argument."""
    if not isinstance(prefix, str) or not prefix:
        raise ValueError("prefix must be a non-empty string")
    if on_error != "allow" and on_error != "deny":
        raise ValueError(f"on_error must be 'allow' or 'deny', got {on_error!r}")
    timeout_ms = parse_duration_ms(timeout)
    if timeout_ms < 1:
        raise ValueError(f"timeout must be at least 1 ms, got {timeout!r}")
    return prefix, on_error, timeout_ms / 1000


def check_identifier(identifier: object) -> str:
    if not isinstance(identifier, str) or not identifier:
        raise ValueError(f"identifier must be a non-empty string, got {identifier!r}")
    return identifier


def _check_rate(rate: object) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise ValueError(f"rate must be an integer (negative refunds), got {rate!r}")
    return rate


class Ratelimit:
    """Decides whether `identifier` may proceed; one Redis round trip per decision.

        ratelimit = Ratelimit(redis, sliding_window(10, "10 s"))
        result = await ratelimit.limit(ip)
        if not result.success:
            return json_response({"error": "Too many requests"}, 429, ratelimit.headers(result))

    `on_error` says what a slow (`timeout`, default 1 s) or failing Redis means:
    `"allow"` fails open, `"deny"` fails closed; `result.reason` tells which happened.
    `limit()` never raises for Redis trouble (any failure of the Redis call, an identifier
    the wire cannot encode included), only for bad arguments (`ValueError`: an empty or
    non-string identifier, a non-integer rate).
    """

    fixed_window = staticmethod(fixed_window)
    sliding_window = staticmethod(sliding_window)
    token_bucket = staticmethod(token_bucket)
    cached_fixed_window = staticmethod(cached_fixed_window)

    def __init__(
        self,
        redis: Redis[Any],
        limiter: Algorithm,
        prefix: str = DEFAULT_PREFIX,
        *,
        timeout: Duration = 1.0,
        on_error: OnError = "allow",
        ephemeral_cache: bool = True,
        cache_size: int = 10_000,
        analytics: bool = False,
        analytics_retention: Duration = "90d",
        dynamic_limits: bool = False,
        deny_list: Iterable[str] = (),
        protection: Protection | None = None,
        clock: Clock = system_clock_ms,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.limiter = limiter
        self.prefix, self.on_error, self.timeout = check_options(prefix, on_error, timeout)
        if protection is not None and protection.prefix != prefix:
            # upstream keys the deny lists under the limiter's prefix: lists under another
            # one would never match what the console or a TypeScript service wrote
            raise ValueError(
                f"protection prefix {protection.prefix!r} differs from the limiter's {prefix!r}"
            )
        self._redis = redis.with_options(timeout=self.timeout)
        # Decisions: `timeout` bounds the whole call (script fallback included) through the
        # transport's one timer, so `limit()` arms no timer of its own.
        self._decider = redis.with_options(timeout=self.timeout, total_timeout=True)
        self._blocks: ExpiringLRU[tuple[int, int]] | None = (
            ExpiringLRU(cache_size) if ephemeral_cache else None
        )
        self._counters: ExpiringLRU[tuple[int, int]] = ExpiringLRU(cache_size)
        self._analytics = analytics
        self._retention_ms = parse_duration_ms(analytics_retention)
        self.dynamic_key = prefix + DYNAMIC_LIMIT_SUFFIX
        self._dynamic = dynamic_limits
        self._deny = frozenset(check_identifier(i) for i in deny_list)
        self.protection = protection
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"Ratelimit({self.limiter!r}, prefix={self.prefix!r})"

    def _key(self, identifier: str) -> str:
        return f"{self.prefix}:{identifier}"

    def _context(self, redis: Redis[Any]) -> Context:
        dynamic = self.dynamic_key if self._dynamic else None
        return Context(redis, dynamic, self._counters, defer)

    # -- deciding ------------------------------------------------------------------------

    async def limit(
        self,
        identifier: str,
        rate: int = 1,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
        country: str | None = None,
    ) -> RateLimitResult:
        """Consumes `rate` tokens (a negative rate refunds) if they fit; see the class doc.

        `ip`, `user_agent` and `country` are checked against the deny lists when the
        limiter has `protection` (in the same round trip as the decision).
        """
        visitor = (ip, user_agent, country)
        result, _ = await self._limit(check_identifier(identifier), _check_rate(rate), visitor)
        return result

    async def _limit(
        self, identifier: str, rate: int, visitor: tuple[str | None, ...] = (None, None, None)
    ) -> tuple[RateLimitResult, int]:
        now = self._clock()
        decision = self._local_decision(identifier, rate, now)
        if decision is None and self.protection is not None:
            decision = await self._ask_protected(self.protection, identifier, rate, now, visitor)
        if decision is None:
            decision = await self._ask_redis(identifier, rate, now)
        if self._blocks is not None and decision.reason is None:
            if decision.blocked_until is not None:
                until = decision.blocked_until
                self._blocks.set(self._key(identifier), (decision.limit, until), until)
            elif rate < 0 and decision.success:
                self._blocks.pop(self._key(identifier))
        pending = decision.pending
        if self._analytics and decision.reason not in ("timeout", "error"):
            denied = decision.reason in DENY_REASONS
            outcome: bool | str = "denied" if denied else decision.success
            who = decision.denied_value or identifier  # upstream records the denied value
            work = defer(
                record_event(self._redis, self.prefix, who, outcome, now, self._retention_ms)
            )
            pending = work if pending is None else asyncio.gather(pending, work)
        result = RateLimitResult(
            decision.success,
            decision.limit,
            decision.remaining,
            decision.reset,
            decision.reason,
            pending,
            decision.denied_value,
        )
        return result, now

    def _local_decision(self, identifier: str, rate: int, now: int) -> Decision | None:
        """A decision made without Redis (deny list, known block), or None."""
        if identifier in self._deny:
            return Decision(False, self.limiter.limit, 0, 0, reason="deny_list")
        if self._blocks is None or rate <= 0:
            return None
        known = self._blocks.get(self._key(identifier), now)
        if known is None:
            return None
        limit, until = known
        return Decision(False, limit, 0, until, reason="cache_block")

    async def _ask_protected(
        self,
        protection: Protection,
        identifier: str,
        rate: int,
        now: int,
        visitor: tuple[str | None, ...],
    ) -> Decision:
        """The decision and the deny lists, issued together (one `/pipeline` request)."""
        ip, user_agent, country = visitor
        local = protection.local_check(ip, user_agent, country)
        if local is not None:
            return Decision(False, self.limiter.limit, 0, 0, None, local.reason, None, local.value)
        # On the decision's view: `timeout` bounds the check from its start, so it is over by
        # the time the decision is (no second wait, no timer of its own).
        check = asyncio.ensure_future(
            protection.check(self._decider, identifier, ip, user_agent, country)
        )
        decision = await self._ask_redis(identifier, rate, now)
        try:
            denial, refresh = await check
        except Exception as exc:  # the lists are unreadable: the limit alone decides
            log.warning("rate limiter: deny-list check failed (%s)", type(exc).__name__)
            return decision
        pending = decision.pending
        if refresh is not None:
            pending = refresh if pending is None else asyncio.gather(pending, refresh)
        if denial is None:
            return dataclasses.replace(decision, pending=pending)
        return Decision(False, decision.limit, 0, 0, None, denial.reason, pending, denial.value)

    async def _ask_redis(self, identifier: str, rate: int, now: int) -> Decision:
        reason: Reason
        key = self._key(identifier)
        try:
            return await self.limiter.decide(self._context(self._decider), key, rate, now)
        except (TimeoutError, TransportTimeout):
            reason = "timeout"
        except UpstashError as exc:  # messages carry no values: safe to log
            reason = "error"
            log.warning("rate limiter: Redis failed (%s): %s", type(exc).__name__, exc)
        except Exception as exc:
            # Anything else on the way (an argument the wire cannot carry, a reply that
            # breaks a parser) is still Redis trouble to the caller: on_error decides.
            # Only the type is logged: the message may quote the identifier.
            reason = "error"
            log.warning("rate limiter: Redis call failed (%s)", type(exc).__name__)
        return Decision(self.on_error == "allow", self.limiter.limit, 0, now, reason=reason)

    # -- inspecting and resetting ----------------------------------------------------------

    async def get_remaining(self, identifier: str) -> RateLimitResult:
        """The tokens left now (token bucket: refills applied), without consuming any.

        Raises the Redis client's errors: this is an inspection, not a decision.
        """
        key = self._key(check_identifier(identifier))
        now = self._clock()
        decision = await self.limiter.decide(self._context(self._redis), key, 0, now)
        return RateLimitResult(True, decision.limit, decision.remaining, decision.reset)

    async def reset_used_tokens(self, identifier: str) -> None:
        """Forgets what `identifier` used: deletes only its live keys (no keyspace SCAN)."""
        key = self._key(check_identifier(identifier))
        now = self._clock()
        keys = self.limiter.keys(key, now)
        if self._blocks is not None:
            self._blocks.pop(key)
        for window_key in keys:
            self._counters.pop(window_key)
        await self._delete_everywhere(keys)

    async def _delete_everywhere(self, keys: list[str]) -> None:
        """Deletes `keys` wherever this limiter keeps its state (one database here)."""
        await self._redis.delete(*keys)

    async def block_until_ready(self, identifier: str, timeout: Duration) -> RateLimitResult:
        """Waits (at most `timeout`) until `identifier` may proceed; returns the last result.

        Waits are computed from each result's `reset` and the clock reading of that
        decision, and the budget is spent by adding up the sleeps, so this works
        where the clock stands still during a request (Workers).
        """
        check_identifier(identifier)
        budget_ms = parse_duration_ms(timeout)
        if budget_ms < 1:
            raise ValueError(f"timeout must be at least 1 ms, got {timeout!r}")
        waited_ms = 0
        while True:
            result, decided_at = await self._limit(identifier, 1)
            if result.success or result.reason in DENY_REASONS | {"error", "timeout"}:
                return result
            left = budget_ms - waited_ms
            if left <= 0:
                return result
            wait_ms = min(max(1, result.reset - decided_at), left)
            await self._sleep(wait_ms / 1000)
            waited_ms += wait_ms

    # -- dynamic limit -------------------------------------------------------------------

    async def set_dynamic_limit(self, limit: int) -> None:
        """Overrides the configured limit for every instance sharing this prefix (when
        built with `dynamic_limits=True`)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"dynamic limit must be an integer >= 1, got {limit!r}")
        await self._redis.set(self.dynamic_key, limit)

    async def clear_dynamic_limit(self) -> None:
        """Falls back to the configured limit."""
        await self._redis.delete(self.dynamic_key)

    async def get_dynamic_limit(self) -> int | None:
        value = await self._redis.get(self.dynamic_key)
        return None if value is None else int(value)

    # -- responses -----------------------------------------------------------------------

    @property
    def policy_window_s(self) -> int:
        """The window advertised in `RateLimit-Policy` (a token bucket's full refill time)."""
        return max(1, -(-self.limiter.policy_window_ms // 1000))

    def headers(self, result: RateLimitResult) -> dict[str, str]:
        """`X-RateLimit-*`, IETF `RateLimit-Policy`/`RateLimit` and `Retry-After` for `result`."""
        return rate_limit_headers(result, self.policy_window_s, now_ms=self._clock())
