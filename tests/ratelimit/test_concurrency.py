"""Atomicity under real concurrency: 500 racing calls from independent clients admit the bound."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from shared.ratelimit import (
    Algorithm,
    Ratelimit,
    RateLimitResult,
    cached_fixed_window,
    fixed_window,
    sliding_window,
    token_bucket,
)
from shared.redis import Redis

from .conftest import FakeClock

pytestmark = pytest.mark.integration

CLIENTS = 5
CALLS = 500


def racing_limiters(
    make_redis: Callable[..., Redis[str]], algorithm: Algorithm, prefix: str, clock: FakeClock
) -> list[Ratelimit]:
    """CLIENTS independent limiters (each its own client, no auto-pipelining, no ephemeral
    cache) on one prefix and one clock: what CLIENTS concurrent instances would be."""
    return [
        Ratelimit(
            make_redis(auto_pipeline=False),
            algorithm,
            prefix,
            timeout=30,
            on_error="deny",
            ephemeral_cache=False,
            clock=clock,
        )
        for _ in range(CLIENTS)
    ]


async def burst(limiters: list[Ratelimit], ident: str) -> Counter[tuple[bool, str | None]]:
    """CALLS limit() calls spread round-robin over the independent limiters, all at once."""
    calls = [limiters[i % len(limiters)].limit(ident) for i in range(CALLS)]
    results: list[RateLimitResult] = await asyncio.gather(*calls)
    return Counter((r.success, r.reason) for r in results)


@pytest.mark.parametrize(
    ("algo", "first", "advance_ms", "second"),
    [
        (fixed_window(50, "10s"), 50, 10_000, 50),
        # next window at half-way: the previous 50 weigh floor(0.5 * 50) = 25
        (sliding_window(50, "10s"), 50, 15_000, 25),
        # ten tokens come back after one interval
        (token_bucket(10, "10s", 50), 50, 10_000, 10),
        (cached_fixed_window(50, "10s"), 50, 10_000, 50),
    ],
    ids=["fixed", "sliding", "token", "cached"],
)
async def test_racing_calls_admit_exactly_the_bound(
    algo: Any,
    first: int,
    advance_ms: int,
    second: int,
    make_redis: Callable[..., Redis[str]],
    prefix: str,
    ident: str,
) -> None:
    """500 concurrent calls over 5 clients (no auto-pipelining) admit exactly the bound,
    none decided by a timeout, and the next window or refill admits exactly again."""
    clock = FakeClock()
    clock.now -= clock.now % 10_000
    limiters = racing_limiters(make_redis, algo, prefix, clock)
    counts = await burst(limiters, ident)
    assert counts == {(True, None): first, (False, None): CALLS - first}
    clock.advance(advance_ms)
    counts = await burst(limiters, ident)
    assert counts == {(True, None): second, (False, None): CALLS - second}


async def test_racing_weighted_calls_never_exceed_the_limit(
    make_redis: Callable[..., Redis[str]], prefix: str, ident: str, direct: Any
) -> None:
    """Mixed weights (1..4) racing on a fixed window sum to at most the limit, and exactly
    the limit when the smallest weight can always fill the gap."""
    clock = FakeClock()
    limiters = racing_limiters(make_redis, fixed_window(50, "10s"), prefix, clock)
    weights = [1 + i % 4 for i in range(200)] + [1] * 100
    calls = [limiters[i % CLIENTS].limit(ident, w) for i, w in enumerate(weights)]
    results = await asyncio.gather(*calls)
    admitted = sum(w for w, r in zip(weights, results, strict=True) if r.success)
    assert admitted <= 50
    stored = int(await direct.get(f"{prefix}:{ident}:{clock.now // 10_000}"))
    assert stored == admitted
    assert all(r.reason is None for r in results)
