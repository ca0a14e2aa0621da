"""@upstash/ratelimit's own analytics reader reads the events our limiter records."""

from __future__ import annotations

from typing import Any

import pytest

from shared.ratelimit import MultiRegionRatelimit, Protection, Ratelimit, fixed_window
from shared.redis import Redis

from .decisions import settled
from .upstream_node import single_region_upstream

pytestmark = pytest.mark.integration


async def test_upstreams_analytics_reader_returns_our_counts(
    devstack: Any, rest: Redis[str], prefix: str
) -> None:
    """getUsage and getMostAllowedBlocked (the console's reader) count what we recorded:
    allowed and rate-limited per identifier, and deny-list denials under the denied value."""
    protection = Protection(rest, prefix)
    await protection.deny("Scraper/2.0")
    ours = Ratelimit(rest, fixed_window(3, "1 d"), prefix, analytics=True, protection=protection)
    script = {"alice": 5, "bob": 2}
    for name, calls in script.items():
        for _ in range(calls):
            await settled(ours, name)
    for _ in range(2):
        denied = await settled(ours, "carol", user_agent="Scraper/2.0")
        assert denied.reason == "deny_user_agent"
    async with single_region_upstream(devstack, prefix, limit=3, analytics=True) as node:
        usage = await node.call(op="usage")
        most = await node.call(op="most", hours=24)
    assert usage["alice"] == {"success": 3, "blocked": 2}, usage
    assert usage["bob"] == {"success": 2, "blocked": 0}, usage
    allowed = {row["identifier"]: row["count"] for row in most["allowed"]}
    limited = {row["identifier"]: row["count"] for row in most["ratelimited"]}
    denied_rows = {row["identifier"]: row["count"] for row in most["denied"]}
    assert allowed == {"alice": 3, "bob": 2}, most
    assert limited == {"alice": 2}, most
    assert denied_rows == {"Scraper/2.0": 2}, most


async def test_multi_region_analytics_go_to_the_first_region_and_read_back(
    devstack: Any, rest: Redis[str], make_redis: Any, prefix: str
) -> None:
    """A multi-region limiter records in its first database, where upstream's reader looks."""
    ours = MultiRegionRatelimit(
        [rest, make_redis()], fixed_window(2, "1 d"), prefix, analytics=True
    )
    for _ in range(3):
        await settled(ours, "dave")
    async with single_region_upstream(devstack, prefix, limit=2, analytics=True) as node:
        usage = await node.call(op="usage")
    assert usage == {"dave": {"success": 2, "blocked": 1}}
