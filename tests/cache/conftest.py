"""Fixtures for the cache tests: a devstack client, a unique namespace, a settable clock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from shared.redis import Redis, RetryPolicy
from tests.conftest import Devstack


@pytest.fixture
async def redis(devstack: Devstack) -> AsyncIterator[Redis[str]]:
    """A client on the session devstack with retries off (tests must see every failure)."""
    client = Redis(devstack.redis_rest_url, devstack.redis_rest_token, retry=RetryPolicy.never())
    await client.ping()  # a warm connection: the first exchange is not what a test measures
    yield client
    await client.aclose()


@pytest.fixture
def namespace() -> str:
    """A random cache namespace: tests share the Redis and never FLUSHDB."""
    return f"t-cache-{uuid.uuid4().hex[:12]}"


@dataclass
class Clock:
    """A settable millisecond clock for freshness (no sleeping to let time pass)."""

    now: int = 1_750_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


class ServerStats:
    """The devstack's counters (HTTP requests and commands), to count round trips."""

    def __init__(self, stack: Devstack) -> None:
        self._url = stack.redis_rest_url + "/_devstack/stats"
        self._headers = {"Authorization": f"Bearer {stack.redis_rest_token}"}

    async def read(self) -> dict[str, int]:
        async with httpx.AsyncClient() as client:
            response = await client.get(self._url, headers=self._headers)
        data: dict[str, int] = response.json()
        return data


@pytest.fixture
def stats(devstack: Devstack) -> ServerStats:
    return ServerStats(devstack)


class Origin:
    """A counting loader: `await origin()` returns `value` after `delay` seconds of "origin
    latency" and counts the calls."""

    def __init__(self, value: object, delay: float = 0.0) -> None:
        self.value = value
        self.delay = delay
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.value
