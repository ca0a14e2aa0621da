"""Each algorithm against the devstack, with an injected clock (no sleeping)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.ratelimit import (
    Ratelimit,
    cached_fixed_window,
    fixed_window,
    sliding_window,
    token_bucket,
)
from shared.redis import Redis

from .conftest import FakeClock

pytestmark = pytest.mark.integration

ALGORITHMS = {
    "fixed": lambda: fixed_window(5, "10 s"),
    "sliding": lambda: sliding_window(5, "10 s"),
    "token": lambda: token_bucket(5, "10 s", 5),
    "cached": lambda: cached_fixed_window(5, "10 s"),
}


def make(rest: Redis[str], algo: Any, prefix: str, clock: FakeClock, **kw: Any) -> Ratelimit:
    return Ratelimit(rest, algo, prefix, clock=clock, sleep=clock.sleep, **kw)


@pytest.mark.parametrize("name", list(ALGORITHMS))
async def test_admits_the_limit_then_denies_then_admits_again(
    name: str, rest: Redis[str], prefix: str, ident: str, clock: FakeClock
) -> None:
    """Five pass, the sixth is denied, and the next window (or refill) admits again."""
    rl = make(rest, ALGORITHMS[name](), prefix, clock)
    results = [await rl.limit(ident) for _ in range(6)]
    assert [r.success for r in results] == [True] * 5 + [False]
    assert [r.remaining for r in results] == [4, 3, 2, 1, 0, 0]
    assert all(r.limit == 5 for r in results)
    assert results[-1].reset > clock.now
    clock.advance(20_000 if name == "sliding" else 10_000)
    again = await rl.limit(ident)
    assert again.success, again


@pytest.mark.parametrize("name", ["fixed", "sliding", "token"])
async def test_rejected_weighted_request_consumes_nothing(
    name: str, rest: Redis[str], prefix: str, ident: str, clock: FakeClock
) -> None:
    """A request of weight 4 with 3 tokens left is denied and leaves the 3 tokens usable."""
    rl = make(rest, ALGORITHMS[name](), prefix, clock, ephemeral_cache=False)
    assert (await rl.limit(ident, 2)).remaining == 3
    denied = await rl.limit(ident, 4)
    assert (denied.success, denied.remaining) == (False, 3)
    assert (await rl.get_remaining(ident)).remaining == 3
    assert (await rl.limit(ident, 3)).success
    assert not (await rl.limit(ident)).success


@pytest.mark.parametrize("name", ["fixed", "sliding", "token", "cached"])
async def test_negative_rate_refunds(
    name: str, rest: Redis[str], prefix: str, ident: str, clock: FakeClock
) -> None:
    """A negative rate gives tokens back (never beyond the limit) and lifts a block."""
    rl = make(rest, ALGORITHMS[name](), prefix, clock)
    assert (await rl.limit(ident, 5)).success
    assert not (await rl.limit(ident)).success
    refund = await rl.limit(ident, -2)
    assert refund.success and refund.remaining == 2
    assert (await rl.limit(ident)).success
    big_refund = await rl.limit(ident, -100)
    assert big_refund.remaining == 5


async def test_sliding_window_weighs_the_previous_window(
    rest: Redis[str], prefix: str, ident: str, clock: FakeClock
) -> None:
    """Half-way into the next window, half of the previous window's count still counts."""
    clock.now -= clock.now % 10_000
    rl = make(rest, sliding_window(10, "10 s"), prefix, clock)
    assert (await rl.limit(ident, 10)).success
    clock.advance(15_000)
    result = await rl.limit(ident)
    assert (result.success, result.remaining) == (True, 4)
    denied = await rl.limit(ident, 5)
    assert not denied.success
    assert clock.now < denied.reset < clock.now + 5_000


async def test_token_bucket_remaining_applies_refills(
    rest: Redis[str], prefix: str, ident: str, clock: FakeClock
) -> None:
    """get_remaining counts the refills since the last write (upstream ignores them)."""
    rl = make(rest, token_bucket(2, "1 s", 10), prefix, clock)
    assert (await rl.limit(ident, 10)).success
    assert (await rl.get_remaining(ident)).remaining == 0
    clock.advance(2_500)
    assert (await rl.get_remaining(ident)).remaining == 4
    assert (await rl.limit(ident)).remaining == 3


@pytest.mark.parametrize("name", list(ALGORITHMS))
async def test_every_key_gets_a_ttl(
    name: str, rest: Redis[str], direct: Any, prefix: str, ident: str, clock: FakeClock
) -> None:
    """Every key a limiter writes expires (upstream's cached fixed window never sets one)."""
    rl = make(rest, ALGORITHMS[name](), prefix, clock)
    result = await rl.limit(ident)
    second = await rl.limit(ident)
    if second.pending is not None:
        await second.pending  # the cached window writes to Redis in the background
    assert result.success
    keys = await direct.keys(f"{prefix}:{ident}*")
    assert keys
    for key in keys:
        assert 0 < await direct.pttl(key) <= 20_000 + 1_000, key


@pytest.mark.parametrize("name", list(ALGORITHMS))
async def test_reset_used_tokens_deletes_only_live_keys(
    name: str, rest: Redis[str], direct: Any, prefix: str, ident: str, clock: FakeClock
) -> None:
    """After reset_used_tokens the identifier has its full budget and no keys."""
    rl = make(rest, ALGORITHMS[name](), prefix, clock)
    for _ in range(6):
        result = await rl.limit(ident)
        if result.pending is not None:
            await result.pending  # the cached window's background write
    await rl.reset_used_tokens(ident)
    assert await direct.keys(f"{prefix}:{ident}*") == []
    result = await rl.limit(ident)
    assert (result.success, result.remaining, result.reason) == (True, 4, None)


async def test_stored_values_follow_upstream_layout(
    rest: Redis[str], direct: Any, prefix: str, ident: str, clock: FakeClock
) -> None:
    """Window counters are integer strings at prefix:id:bucket; the bucket is a hash in ms."""
    window = 10_000
    await make(rest, fixed_window(5, window / 1000), prefix + "f", clock).limit(ident, 2)
    assert await direct.get(f"{prefix}f:{ident}:{clock.now // window}") == "2"
    await make(rest, sliding_window(5, "10s"), prefix + "s", clock).limit(ident, 3)
    assert await direct.get(f"{prefix}s:{ident}:{clock.now // window}") == "3"
    await make(rest, token_bucket(1, "10s", 5), prefix + "t", clock).limit(ident, 2)
    bucket = await direct.hgetall(f"{prefix}t:{ident}")
    assert bucket == {"refilledAt": str(clock.now), "tokens": "3"}


async def test_dynamic_limit_overrides_and_clears(
    rest: Redis[str], prefix: str, ident: str, clock: FakeClock
) -> None:
    """A limit stored at {prefix}:dynamic:global replaces the configured one, in one script."""
    rl = make(rest, fixed_window(2, "10s"), prefix, clock, dynamic_limits=True)
    await rl.set_dynamic_limit(4)
    assert await rl.get_dynamic_limit() == 4
    results = [await rl.limit(ident) for _ in range(5)]
    assert [r.success for r in results] == [True] * 4 + [False]
    assert results[0].limit == 4
    await rl.clear_dynamic_limit()
    assert await rl.get_dynamic_limit() is None
    assert (await rl.get_remaining(ident)).limit == 2


async def test_block_until_ready_waits_on_reset_with_a_frozen_clock(
    rest: Redis[str], prefix: str, ident: str, clock: FakeClock
) -> None:
    """It sleeps reset - decision time (the clock never moves by itself) and then passes."""
    clock.now -= clock.now % 10_000
    rl = make(rest, fixed_window(1, "10s"), prefix, clock)
    assert (await rl.limit(ident)).success
    clock.advance(3_000)
    result = await rl.block_until_ready(ident, "30s")
    assert result.success
    assert clock.slept == [7.0]


async def test_block_until_ready_gives_up_when_the_budget_is_spent(
    rest: Redis[str], prefix: str, ident: str, clock: FakeClock
) -> None:
    """With 2 s of budget and 7 s to wait, it sleeps 2 s, retries once and returns denied."""
    clock.now -= clock.now % 10_000
    rl = make(rest, fixed_window(1, "10s"), prefix, clock, ephemeral_cache=False)
    await rl.limit(ident)
    clock.advance(3_000)
    result = await rl.block_until_ready(ident, 2)
    assert not result.success
    assert clock.slept == [2.0]
