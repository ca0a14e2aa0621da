"""Clients for the Redis integration tests, on the session devstack."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.redis import Redis, RetryPolicy
from tests.conftest import Devstack


@pytest.fixture
async def redis(devstack: Devstack) -> AsyncIterator[Redis[str]]:
    """A client with retries off (tests must see every failure)."""
    client = Redis(devstack.redis_rest_url, devstack.redis_rest_token, retry=RetryPolicy.never())
    yield client
    await client.aclose()


@pytest.fixture
def key() -> str:
    """A fresh random key prefix."""
    return f"t:{uuid.uuid4().hex}:"


class ServerStats:
    """Reads the devstack's request counters, to count round trips at the server."""

    def __init__(self, stack: Devstack) -> None:
        self._url = stack.redis_rest_url + "/_devstack/stats"
        self._headers = {"Authorization": f"Bearer {stack.redis_rest_token}"}

    async def http_requests(self) -> int:
        async with httpx.AsyncClient() as client:
            response = await client.get(self._url, headers=self._headers)
        count: int = response.json()["http_requests"]
        return count


@pytest.fixture
def stats(devstack: Devstack) -> ServerStats:
    return ServerStats(devstack)
