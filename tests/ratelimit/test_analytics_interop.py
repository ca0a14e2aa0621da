"""@upstash/ratelimit's own analytics reader reads the events our limiter records."""

from __future__ import annotations

from typing import Any

import pytest

from shared.ratelimit import MultiRegionRatelimit, Protection, Ratelimit, fixed_window
from shared.redis import Redis

from .upstream_node import start_upstream

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
            result = await ours.limit(name)
            assert result.pending is not None
            await result.pending
    for _ in range(2):
        denied = await ours.limit("carol", user_agent="Scraper/2.0")
        assert denied.reason == "deny_user_agent"
        assert denied.pending is not None
        await denied.pending
    node = await start_upstream(
        {
            "urls": [devstack.redis_rest_url],
            "token": devstack.redis_rest_token,
            "prefix": prefix,
            "algorithm": "fixed",
            "limit": 3,
            "window": "1 d",
            "multi": False,
            "analytics": True,
        }
    )
    try:
        usage = await node.call(op="usage")
        most = await node.call(op="most", hours=24)
    finally:
        await node.close()
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
        result = await ours.limit("dave")
        assert result.pending is not None
        await result.pending
    node = await start_upstream(
        {
            "urls": [devstack.redis_rest_url],
            "token": devstack.redis_rest_token,
            "prefix": prefix,
            "algorithm": "fixed",
            "limit": 2,
            "window": "1 d",
            "multi": False,
            "analytics": True,
        }
    )
    try:
        usage = await node.call(op="usage")
    finally:
        await node.close()
    assert usage == {"dave": {"success": 2, "blocked": 1}}
