"""MultiRegionRatelimit over three devstack regions, next to @upstash/ratelimit's own."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis

from shared.ratelimit import (
    MultiRegionRatelimit,
    Protection,
    cached_fixed_window,
    fixed_window,
    sliding_window,
    token_bucket,
)
from shared.redis import Redis, RetryPolicy
from tests.conftest import Devstack, start_devstack, stop_devstack

from .decisions import settled
from .upstream_node import UpstreamNode, start_upstream

pytestmark = pytest.mark.integration

LIMIT = 10
REGIONS = 3


@pytest.fixture(scope="module")
def regions_stack() -> Iterator[Devstack]:
    """A private devstack with three independent Redis regions."""
    stack = start_devstack("--regions", str(REGIONS))
    try:
        yield stack
    finally:
        stop_devstack(stack.process)
        stack.stderr_path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Regions:
    """A REST client per region (what the limiter uses) and a direct TCP client per region
    (for assertions only)."""

    clients: list[Redis[str]]
    direct: list[aioredis.Redis]


@pytest.fixture
async def regions(regions_stack: Devstack) -> AsyncIterator[Regions]:
    """The three regions' clients, closed after the test."""
    token = regions_stack.redis_rest_token
    stated = regions_stack.raw["regions"]
    result = Regions(
        [Redis(r["redis_rest_url"], token, retry=RetryPolicy.never()) for r in stated],
        [aioredis.Redis.from_url(r["redis_url"], decode_responses=True) for r in stated],
    )
    yield result
    for client in (*result.clients, *result.direct):
        await client.aclose()


@pytest.fixture
async def upstream(regions_stack: Devstack) -> AsyncIterator[Any]:
    """Starts upstream.mjs over the three regions."""
    started: list[UpstreamNode] = []

    async def start(**config: Any) -> UpstreamNode:
        node = await start_upstream(
            {
                "urls": [r["redis_rest_url"] for r in regions_stack.raw["regions"]],
                "token": regions_stack.redis_rest_token,
                "multi": True,
                "limit": LIMIT,
                "window": "1 d",
                **config,
            }
        )
        started.append(node)
        return node

    yield start
    for node in started:
        await node.close()


async def window_hashes(direct: list[aioredis.Redis], prefix: str, ident: str) -> list[Any]:
    """Each region's window hashes for `ident` (id -> weight)."""
    out = []
    for client in direct:
        keys = sorted(await client.keys(f"{prefix}:{ident}:*"))
        out.append({key: await client.hgetall(key) for key in keys})
    return out


ALGORITHMS = {"fixed": fixed_window(LIMIT, "1 d"), "sliding": sliding_window(LIMIT, "1 d")}


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
async def test_alternating_with_upstreams_multi_region_limiter_admits_the_limit(
    algorithm: str,
    upstream: Any,
    regions: Regions,
    prefix: str,
    ident: str,
) -> None:
    """Ours and @upstash/ratelimit's MultiRegionRatelimit, alternating over three regions,
    admit exactly the limit together, and every region ends up with the same request ids."""
    node = await upstream(prefix=prefix, algorithm=algorithm)
    ours = MultiRegionRatelimit(regions.clients, ALGORITHMS[algorithm], prefix, timeout=10)
    admitted = {"ts": 0, "py": 0}
    for i in range(2 * LIMIT + 6):
        if i % 2 == 0:
            answer = await node.limit(ident)
            assert answer["pendingError"] is None, answer
            admitted["ts"] += answer["success"]
        else:
            result = await ours.limit(ident)
            assert result.reason in (None, "cache_block"), result
            assert result.pending is not None or result.reason == "cache_block"
            if result.pending is not None:
                await result.pending
            admitted["py"] += result.success
    assert admitted["ts"] + admitted["py"] == LIMIT, admitted
    hashes = await window_hashes(regions.direct, prefix, ident)
    assert hashes[0] == hashes[1] == hashes[2], hashes
    (window,) = hashes[0].values()
    assert all(len(rid) == 16 and weight == "1" for rid, weight in window.items()), window
    # upstream's fixed window also records the request it rejects (then its cache blocks)
    assert len(window) == (LIMIT + 1 if algorithm == "fixed" else LIMIT), window


async def test_a_stopped_region_does_not_stop_decisions(
    regions_stack: Devstack,
    regions: Regions,
    prefix: str,
    ident: str,
) -> None:
    """With one region's Redis stopped (SIGSTOP: it never answers), the other two decide,
    the limit holds, and once it answers again it is filled up to the limit, not past it."""
    pid = int(regions_stack.raw["regions"][2]["redis_pid"])
    ours = MultiRegionRatelimit(
        regions.clients, fixed_window(5, "1 d"), prefix, timeout=1.5, ephemeral_cache=False
    )
    os.kill(pid, signal.SIGSTOP)
    try:
        results = []
        for _ in range(7):
            results.append(await ours.limit(ident))
        assert [r.success for r in results] == [True] * 5 + [False] * 2
        assert all(r.reason in (None, "cache_block") for r in results)
    finally:
        os.kill(pid, signal.SIGCONT)
    await asyncio.gather(*(r.pending for r in results if r.pending is not None))
    # Region 2 ran the queued calls when it resumed, in its own order, or dropped some:
    # the next request's synchronisation fills it up to the limit and never past it.
    # (That request itself may be admitted by region 2: the documented bound.)
    await settled(ours, ident)  # the catch-up request
    hashes = await window_hashes(regions.direct, prefix, ident)
    # Which ids fill a region may differ (the catch-up request may be admitted by the region
    # that lagged, and background syncs race the later calls); how many never does.
    assert [sum(len(h) for h in region.values()) for region in hashes] == [5, 5, 5], hashes
    final = await ours.limit(ident)
    assert (final.success, final.reason) == (False, None)


async def test_every_region_stopped_follows_on_error(
    regions_stack: Devstack, regions: Regions, prefix: str, ident: str
) -> None:
    """When no region answers within the timeout, on_error decides (here: deny)."""
    pids = [int(region["redis_pid"]) for region in regions_stack.raw["regions"]]
    ours = MultiRegionRatelimit(
        regions.clients, fixed_window(5, "1 d"), prefix, timeout=0.3, on_error="deny"
    )
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        result = await ours.limit(ident)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert (result.success, result.reason) == (False, "timeout")
    if result.pending is not None:
        await asyncio.gather(result.pending, return_exceptions=True)


async def test_concurrent_burst_stays_within_the_documented_bound(
    regions: Regions,
    prefix: str,
    ident: str,
) -> None:
    """A burst of concurrent requests admits at most regions x limit, and after the
    synchronisation every region holds the same request ids."""
    ours = MultiRegionRatelimit(regions.clients, sliding_window(LIMIT, "1 d"), prefix, timeout=10)
    results = await asyncio.gather(*(ours.limit(ident) for _ in range(4 * LIMIT)))
    admitted = sum(r.success for r in results)
    assert LIMIT <= admitted <= REGIONS * LIMIT
    await asyncio.gather(*(r.pending for r in results if r.pending is not None))
    hashes = await window_hashes(regions.direct, prefix, ident)
    assert hashes[0] == hashes[1] == hashes[2]


async def test_get_remaining_and_reset_cover_every_region(
    regions: Regions,
    prefix: str,
    ident: str,
) -> None:
    """get_remaining reads without recording; reset_used_tokens empties every region."""
    ours = MultiRegionRatelimit(regions.clients, fixed_window(5, "1 d"), prefix, timeout=10)
    for _ in range(3):
        await settled(ours, ident)
    assert (await ours.get_remaining(ident)).remaining == 2
    assert (await ours.get_remaining(ident)).remaining == 2
    await ours.reset_used_tokens(ident)
    assert await window_hashes(regions.direct, prefix, ident) == [{}, {}, {}]
    assert (await ours.limit(ident)).remaining == 4


async def test_reset_forgets_the_same_window_in_every_region(
    regions: Regions,
    prefix: str,
    ident: str,
) -> None:
    """A reset at a window edge forgets one window everywhere: the clock is read once, so
    no region keeps the old window while another loses the new one."""
    day = 86_400_000
    start = (1_800_000_000_000 // day) * day + day - 1  # the last millisecond of a window
    now = [start]
    advance_after_read = [False]

    def clock() -> int:
        reading = now[0]
        if advance_after_read[0]:
            now[0] = start + 1  # the next reading falls in the next window
        return reading

    ours = MultiRegionRatelimit(
        regions.clients, fixed_window(5, "1 d"), prefix, timeout=10, clock=clock
    )
    await settled(ours, ident)
    advance_after_read[0] = True
    await ours.reset_used_tokens(ident)
    assert await window_hashes(regions.direct, prefix, ident) == [{}, {}, {}]


def test_multi_region_arguments_are_checked(regions: Regions) -> None:
    """No Redis, or an algorithm upstream has no multi-region form of, is a ValueError."""
    with pytest.raises(ValueError):
        MultiRegionRatelimit([], fixed_window(5, "1 d"))
    with pytest.raises(ValueError):
        MultiRegionRatelimit(regions.clients, token_bucket(1, "1 s", 5))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MultiRegionRatelimit(regions.clients, cached_fixed_window(5, "1 s"))


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
async def test_every_window_hash_in_every_region_gets_a_ttl(
    algorithm: str,
    regions: Regions,
    prefix: str,
    ident: str,
) -> None:
    """The hashes a decision and its synchronisation create expire in every region (the
    README's claim over upstream): nothing a multi-region limiter writes lives forever."""
    ours = MultiRegionRatelimit(regions.clients, ALGORITHMS[algorithm], prefix, timeout=10)
    for _ in range(3):
        await settled(ours, ident)
    window_ms = 86_400_000
    for client in regions.direct:
        keys = await client.keys(f"{prefix}:{ident}:*")
        assert keys, "a region holds no window hash"
        for key in keys:
            assert 0 < await client.pttl(key) <= 2 * window_ms + 1000, key


async def test_protection_lists_live_in_the_first_region_for_both_sides(
    upstream: Any, regions: Regions, prefix: str, ident: str
) -> None:
    """Our multi-region limiter reads the deny lists from the first database (upstream's
    MultiRegionRatelimit has no protection: it ignores `enableProtection`), where upstream's
    single-region limiter on that database reads them too; a value denied only in another
    region blocks neither."""
    first, second = Protection(regions.clients[0], prefix), Protection(regions.clients[1], prefix)
    ours = MultiRegionRatelimit(
        regions.clients, fixed_window(LIMIT, "1 d"), prefix, timeout=10, protection=first
    )
    # (upstream's single-region keys are strings where ours are hashes: its identifiers
    # below are ones our multi-region limiter never counted)
    await first.deny(f"{ident}-denied", f"{ident}-ts-denied")
    await second.deny(f"{ident}-elsewhere", f"{ident}-ts-elsewhere")
    denied = await ours.limit(f"{ident}-denied")
    assert (denied.success, denied.reason) == (False, "deny_identifier")
    assert (await ours.limit(f"{ident}-elsewhere")).success
    multi = await upstream(prefix=prefix, algorithm="fixed", protection=True)
    assert (await multi.limit(f"{ident}-denied"))["reason"] is None  # no protection upstream
    single = await upstream(prefix=prefix, algorithm="fixed", protection=True, multi=False)
    theirs = await single.limit(f"{ident}-ts-denied")
    assert (theirs["success"], theirs["reason"]) == (False, "denyList")
    assert (await single.limit(f"{ident}-ts-elsewhere"))["success"]


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
async def test_a_refund_reaches_every_full_region(
    algorithm: str,
    regions: Regions,
    prefix: str,
    ident: str,
) -> None:
    """A negative rate (a refund) on a spent budget is recorded in every region although
    their windows are full: each then counts the limit minus one, and exactly one more
    request is admitted."""
    limit = 3
    algorithms = {"fixed": fixed_window(limit, "1 d"), "sliding": sliding_window(limit, "1 d")}
    ours = MultiRegionRatelimit(
        regions.clients, algorithms[algorithm], prefix, timeout=10, ephemeral_cache=False
    )
    for _ in range(limit):
        assert (await settled(ours, ident)).success
    await settled(ours, ident, -1)  # the refund
    sums = [
        sum(int(weight) for window in region.values() for weight in window.values())
        for region in await window_hashes(regions.direct, prefix, ident)
    ]
    assert sums == [limit - 1] * REGIONS, sums
    assert (await settled(ours, ident)).success
    assert not (await ours.limit(ident)).success


async def test_a_full_region_that_missed_a_refund_gets_it_from_the_synchronisation(
    regions: Regions,
    prefix: str,
    ident: str,
) -> None:
    """A region that missed a refund (unreachable then) and so counts its window full still
    receives the refund, and then the request the others admitted: every region ends with
    the same ids instead of the lagging one staying full for the rest of the window."""
    limit = 3
    ours = MultiRegionRatelimit(
        regions.clients, fixed_window(limit, "1 d"), prefix, timeout=10, ephemeral_cache=False
    )
    await settled(ours, ident)
    [window_key] = await regions.direct[0].keys(f"{prefix}:{ident}:*")
    spent = {"a" * 16: "1", "b" * 16: "1", "c" * 16: "1"}
    for client in regions.direct:  # the budget spent everywhere ...
        await client.delete(window_key)
        await client.hset(window_key, mapping=spent)
    for client in regions.direct[:2]:  # ... and a refund only two regions recorded
        await client.hset(window_key, "r" * 16, "-1")
    # The first region to answer decides: the lagging one may deny (while the others record
    # the request). Either way the synchronisation brings every region to the same state.
    result = await settled(ours, ident)
    hashes = [await client.hgetall(window_key) for client in regions.direct]
    assert hashes[0] == hashes[1] == hashes[2], hashes
    assert "r" * 16 in hashes[2], hashes
    if result.success:
        assert sum(int(w) for w in hashes[2].values()) == limit, hashes
