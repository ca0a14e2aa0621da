"""The assembled app with its Redis refusing connections: the rate limiter fails open, and the
answer's rate-limit headers claim no quota the limiter never read."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from devstack.dev import app_env
from tests.conftest import Devstack
from tests.support.inprocess import BASE_URL, app_client

pytestmark = pytest.mark.integration


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """A loopback port that is bound but never listens: every connect is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


async def test_fail_open_answers_carry_only_the_policy(
    devstack: Devstack, refusing_url: str
) -> None:
    """With Redis unreachable, a route that needs no Redis still answers 200 (fail open) with
    X-RateLimit-Limit and RateLimit-Policy, but no Remaining, Reset or RateLimit field."""
    env = {**app_env(devstack.raw, BASE_URL), "UPSTASH_REDIS_REST_URL": refusing_url}
    async with app_client(env) as client:
        response = await client.get("/api/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["x-ratelimit-limit"] == "10"
    assert "ratelimit-policy" in response.headers
    for claimed in ("x-ratelimit-remaining", "x-ratelimit-reset", "ratelimit", "retry-after"):
        assert claimed not in response.headers, (claimed, dict(response.headers))
