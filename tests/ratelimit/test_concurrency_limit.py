"""ConcurrencyLimit against the devstack: a bound on leases held at once, expiry, renewal."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from shared.ratelimit import ConcurrencyLimit
from shared.redis import Redis, RetryPolicy
from tests.support.loopback import loopback

from .conftest import FakeClock

pytestmark = pytest.mark.integration


async def test_200_concurrent_acquires_never_hold_more_than_10_leases(
    rest: Redis[str], direct: aioredis.Redis, prefix: str, ident: str
) -> None:
    """200 callers competing for 10 slots: at most 10 hold a lease at any instant (counted
    in process and sampled in Redis), and every caller eventually runs."""
    limit = ConcurrencyLimit(rest, 10, lease="30 s", prefix=prefix, timeout=10)
    holding = 0
    most = 0
    samples: list[int] = []
    done = asyncio.Event()

    async def worker() -> None:
        nonlocal holding, most
        while True:
            lease = await limit.acquire(ident)
            assert lease.reason is None, lease
            if lease.success:
                break
            await asyncio.sleep(random.uniform(0.001, 0.01))  # a client's retry backoff
        holding += 1
        most = max(most, holding)
        await asyncio.sleep(random.uniform(0.001, 0.01))  # the work done under the lease
        holding -= 1
        assert await limit.release(lease)

    async def sampler() -> None:
        while not done.is_set():
            samples.append(await direct.zcard(f"{prefix}:{ident}"))

    sampling = asyncio.create_task(sampler())
    await asyncio.gather(*(worker() for _ in range(200)))
    done.set()
    await sampling
    assert 1 <= most <= 10
    assert len(samples) > 20 and max(samples) <= 10 and max(samples) >= 2, samples[:50]
    assert await direct.zcard(f"{prefix}:{ident}") == 0


async def test_a_holder_that_never_releases_frees_its_slot_after_the_lease(
    rest: Redis[str], direct: aioredis.Redis, prefix: str, ident: str, clock: FakeClock
) -> None:
    """A crashed holder's slot is taken again once its lease has ended, not before."""
    limit = ConcurrencyLimit(rest, 1, lease="10 s", prefix=prefix, clock=clock)
    first = await limit.acquire(ident)
    assert first.success and first.reset == clock.now + 10_000
    denied = await limit.acquire(ident)
    assert not denied.success and denied.lease_id is None
    assert denied.reset == clock.now + 1_000  # retry hint, sooner than the lease end
    assert "Retry-After" in limit.headers(denied)
    clock.advance(9_999)
    assert not (await limit.acquire(ident)).success
    clock.advance(1)
    second = await limit.acquire(ident)
    assert second.success
    # the late release of the expired lease does not free the new holder's slot
    assert not await limit.release(first)
    assert not (await limit.acquire(ident)).success
    assert 0 < await direct.pttl(f"{prefix}:{ident}") <= 10_000


async def test_renewal_keeps_a_long_holder_and_release_is_per_lease(
    rest: Redis[str], prefix: str, ident: str, clock: FakeClock
) -> None:
    """A renewed lease outlives its first expiry; a lease that expired cannot be renewed."""
    limit = ConcurrencyLimit(rest, 2, lease="10 s", prefix=prefix, clock=clock)
    a = await limit.acquire(ident)
    b = await limit.acquire(ident)
    assert a.success and b.success and b.remaining == 0
    clock.advance(8_000)
    renewed = await limit.renew(a)
    assert renewed is not None and renewed.reset == clock.now + 10_000
    clock.advance(5_000)  # b has expired, a has not
    assert await limit.renew(b) is None
    assert await limit.held(ident) == 1
    c = await limit.acquire(ident)
    assert c.success and c.remaining == 0
    assert await limit.release(a)
    assert await limit.held(ident) == 1
    assert (await limit.acquire(ident)).success


@pytest.mark.parametrize(("on_error", "success"), [("allow", True), ("deny", False)])
async def test_unreachable_redis_follows_on_error(on_error: Any, success: bool, ident: str) -> None:
    """A Redis that refuses connections gives reason "error" and on_error's answer."""
    redis = Redis("http://127.0.0.1:9", "token", retry=RetryPolicy.never())
    limit = ConcurrencyLimit(redis, 3, on_error=on_error, timeout=2)
    lease = await limit.acquire(ident)
    await redis.aclose()
    assert (lease.success, lease.reason, lease.lease_id) == (success, "error", None)
    assert not await limit.release(lease)


async def test_a_silent_redis_is_a_timeout_within_the_limit_timeout(ident: str) -> None:
    """A Redis that never answers gives reason "timeout" once `timeout` is spent, as a whole
    (the script's NOSCRIPT fallback would get only what is left)."""
    release = asyncio.Event()

    async def silent(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(status=503)

    async with loopback(silent) as url:
        redis = Redis(url, "token")
        limit = ConcurrencyLimit(redis, 3, on_error="deny", timeout=0.5)
        started = time.monotonic()
        lease = await limit.acquire(ident)
        elapsed = time.monotonic() - started
        release.set()
        await redis.aclose()
    assert (lease.success, lease.reason) == (False, "timeout")
    assert 0.5 <= elapsed < 1.5, elapsed


def test_bad_arguments_are_value_errors(rest: Redis[str]) -> None:
    """max_concurrent, lease and on_error are validated."""
    for kwargs in ({"max_concurrent": 0}, {"max_concurrent": True}):
        with pytest.raises(ValueError):
            ConcurrencyLimit(rest, **kwargs)
    with pytest.raises(ValueError):
        ConcurrencyLimit(rest, 1, lease=0)
    with pytest.raises(ValueError):
        ConcurrencyLimit(rest, 1, on_error="maybe")  # type: ignore[arg-type]
