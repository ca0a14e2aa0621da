"""Round trips per decision, counted by the devstack, plus the features that add or save some."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.ratelimit import (
    Ratelimit,
    cached_fixed_window,
    fixed_window,
    lua,
    sliding_window,
    token_bucket,
)
from shared.ratelimit.analytics import event_key
from shared.redis import Redis

from .conftest import FakeClock, ServerStats

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "algo", [fixed_window(50, "10s"), sliding_window(50, "10s"), token_bucket(5, "10s", 50)]
)
async def test_one_http_request_per_decision(
    algo: Any, rest: Redis[str], stats: ServerStats, prefix: str, ident: str, clock: FakeClock
) -> None:
    """In steady state every limit() is exactly one HTTP request (EVALSHA)."""
    rl = Ratelimit(rest, algo, prefix, clock=clock)
    await rl.limit(ident)  # the script is loaded from here on
    before = await stats.http_requests()
    for _ in range(10):
        await rl.limit(ident)
    assert await stats.http_requests() - before == 10


async def test_first_call_after_a_script_flush_pays_one_extra_request(
    rest: Redis[str], direct: Any, stats: ServerStats, prefix: str, ident: str, clock: FakeClock
) -> None:
    """After SCRIPT FLUSH (a server restart), EVALSHA gets NOSCRIPT and EVAL reloads once."""
    rl = Ratelimit(rest, fixed_window(5, "10s"), prefix, clock=clock)
    await rl.limit(ident)
    await direct.script_flush()
    before = await stats.http_requests()
    assert (await rl.limit(ident)).success
    assert await stats.http_requests() - before == 2
    assert await direct.script_exists(lua.FIXED_WINDOW.sha) == [True]
    await rl.limit(ident)
    assert await stats.http_requests() - before == 3


async def test_known_block_costs_no_request(
    rest: Redis[str], stats: ServerStats, prefix: str, ident: str, clock: FakeClock
) -> None:
    """Once denied, the identifier is denied from memory until reset, then Redis decides."""
    rl = Ratelimit(rest, fixed_window(1, "10s"), prefix, clock=clock)
    await rl.limit(ident)
    denied = await rl.limit(ident)
    assert (denied.success, denied.reason) == (False, None)
    before = await stats.http_requests()
    cached = await rl.limit(ident)
    assert (cached.success, cached.reason, cached.reset) == (False, "cache_block", denied.reset)
    assert await stats.http_requests() == before
    clock.now = denied.reset
    assert (await rl.limit(ident)).success


async def test_cached_fixed_window_decides_locally_and_syncs_in_background(
    rest: Redis[str], direct: Any, stats: ServerStats, prefix: str, ident: str, clock: FakeClock
) -> None:
    """After the first call, decisions come from memory; `pending` carries the Redis write."""
    rl = Ratelimit(rest, cached_fixed_window(3, "10s"), prefix, clock=clock)
    first = await rl.limit(ident)
    assert first.pending is None
    second = await rl.limit(ident)
    assert second.success and second.pending is not None
    await second.pending
    third = await rl.limit(ident)
    assert third.pending is not None
    await third.pending
    before = await stats.http_requests()
    local_denial = await rl.limit(ident)
    assert (local_denial.success, local_denial.reason) == (False, "cache_block")
    assert await stats.http_requests() == before
    assert await direct.get(f"{prefix}:{ident}:{clock.now // 10_000}") == "3"


async def test_deny_list_denies_without_redis(
    rest: Redis[str], stats: ServerStats, prefix: str, clock: FakeClock
) -> None:
    """A deny-listed identifier is denied with reason deny_list and no request."""
    rl = Ratelimit(rest, fixed_window(5, "10s"), prefix, deny_list=["bad-actor"], clock=clock)
    before = await stats.http_requests()
    result = await rl.limit("bad-actor")
    assert (result.success, result.remaining, result.reason) == (False, 0, "deny_list")
    assert await stats.http_requests() == before


async def test_analytics_count_hourly_with_an_expiry(
    rest: Redis[str], direct: Any, prefix: str, ident: str, clock: FakeClock
) -> None:
    """With analytics on, `pending` does ZINCRBY into the hour bucket and sets a TTL."""
    rl = Ratelimit(rest, fixed_window(1, "10s"), prefix, analytics=True, clock=clock)
    for _ in range(3):
        result = await rl.limit(ident)
        assert result.pending is not None
        await result.pending
    key = event_key(prefix, clock.now)
    assert key == f"{prefix}:events:{clock.now // 3_600_000 * 3_600_000}"
    scores = dict(await direct.zrange(key, 0, -1, withscores=True))
    allowed = json.dumps({"identifier": ident, "success": True}, separators=(",", ":"))
    denied = json.dumps({"identifier": ident, "success": False}, separators=(",", ":"))
    assert scores == {allowed: 1.0, denied: 2.0}
    assert await direct.pttl(key) > 0


async def test_analytics_are_off_by_default(
    rest: Redis[str], prefix: str, ident: str, clock: FakeClock
) -> None:
    """Without analytics there is no background work."""
    rl = Ratelimit(rest, sliding_window(5, "10s"), prefix, clock=clock)
    assert (await rl.limit(ident)).pending is None
