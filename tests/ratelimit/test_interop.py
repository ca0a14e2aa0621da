"""The official @upstash/ratelimit (npm) and ours, alternating on one identifier, share a budget."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.ratelimit import Ratelimit, fixed_window, sliding_window, token_bucket
from shared.redis import Redis

from .upstream_node import NodeScript, start_script

pytestmark = pytest.mark.integration

LIMIT = 10
OURS = {
    "fixed": lambda: fixed_window(LIMIT, "1 d"),
    "sliding": lambda: sliding_window(LIMIT, "1 d"),
    "token": lambda: token_bucket(1, "1 d", LIMIT),
}


class NodeLimiter(NodeScript):
    """A running `interop.mjs`: one identifier per stdin line, one JSON result per line."""

    async def limit(self, identifier: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.exchange(identifier)
        return answer


async def start_node(devstack: Any, prefix: str, algorithm: str) -> NodeLimiter:
    config = {
        "url": devstack.redis_rest_url,
        "token": devstack.redis_rest_token,
        "prefix": prefix,
        "algorithm": algorithm,
        "limit": LIMIT,
        "window": "1 d",
        "refill": 1,
    }
    return NodeLimiter(await start_script("interop.mjs", config))


@pytest.fixture
async def node_factory(devstack: Any) -> AsyncIterator[Any]:
    """Starts interop.mjs processes and stops them at the end of the test."""
    started: list[NodeLimiter] = []

    async def start(prefix: str, algorithm: str) -> NodeLimiter:
        node = await start_node(devstack, prefix, algorithm)
        started.append(node)
        return node

    yield start
    for node in started:
        await node.close()


@pytest.mark.parametrize("algorithm", list(OURS))
async def test_alternating_with_the_official_limiter_admits_exactly_the_limit(
    algorithm: str, node_factory: Any, rest: Redis[str], prefix: str, ident: str
) -> None:
    """TypeScript and Python calls, alternating on one identifier, admit LIMIT in total."""
    node = await node_factory(prefix, algorithm)
    ours = Ratelimit(rest, OURS[algorithm](), prefix, timeout=30, on_error="deny")
    admitted = {"ts": 0, "py": 0}
    trail: list[tuple[str, bool, int]] = []
    for i in range(2 * LIMIT + 6):
        if i % 2 == 0:
            answer = await node.limit(ident)
            admitted["ts"] += answer["success"]
            trail.append(("ts", answer["success"], answer["remaining"]))
        else:
            result = await ours.limit(ident)
            assert result.reason in (None, "cache_block"), result
            admitted["py"] += result.success
            trail.append(("py", result.success, result.remaining))
    assert admitted["ts"] + admitted["py"] == LIMIT, trail
    assert admitted["ts"] == admitted["py"] == LIMIT // 2, trail
    # remaining counts down across both implementations
    assert [r for _, ok, r in trail if ok] == list(range(LIMIT - 1, -1, -1)), trail
