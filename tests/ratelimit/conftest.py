"""Fixtures for the rate limiter: devstack clients, a fake clock, server-side counters."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from shared.redis import Redis, RetryPolicy

# A fixed instant in the middle of a day, so no test window straddles a boundary by accident.
T0 = 1_700_000_000_000 - (1_700_000_000_000 % 86_400_000) + 43_200_000


@dataclass
class FakeClock:
    """A clock that only moves when told to (`advance`), or by the fake sleep."""

    now: int = T0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += round(seconds * 1000)


@pytest.fixture
def clock() -> FakeClock:
    """A frozen clock at T0 (advance it explicitly)."""
    return FakeClock()


@pytest.fixture
def ident() -> str:
    """A unique identifier per test (the server is shared: never FLUSHDB)."""
    return f"rl-test-{uuid.uuid4().hex}"


@pytest.fixture
def prefix() -> str:
    """A unique limiter prefix per test."""
    return f"rltest:{uuid.uuid4().hex}"


@pytest.fixture
async def make_redis(devstack: Any) -> AsyncIterator[Callable[..., Redis[str]]]:
    """Builds REST clients on the devstack (closed at the end of the test)."""
    clients: list[Redis[str]] = []

    def make(**options: Any) -> Redis[str]:
        client = Redis(
            devstack.redis_rest_url,
            devstack.redis_rest_token,
            retry=RetryPolicy.never(),
            **options,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def rest(make_redis: Callable[..., Redis[str]]) -> Redis[str]:
    """One REST client on the devstack."""
    return make_redis()


@pytest.fixture
async def direct(devstack: Any) -> AsyncIterator[aioredis.Redis]:
    """A direct TCP client to the devstack's Redis, for assertions only."""
    client = aioredis.Redis.from_url(devstack.redis_url, decode_responses=True)
    yield client
    await client.aclose()


class ServerStats:
    """Reads the devstack's request counters (`GET /_devstack/stats`)."""

    def __init__(self, devstack: Any) -> None:
        self._url = devstack.redis_rest_url + "/_devstack/stats"
        self._headers = {"Authorization": f"Bearer {devstack.redis_rest_token}"}

    async def read(self) -> dict[str, int]:
        async with httpx.AsyncClient() as client:
            response = await client.get(self._url, headers=self._headers)
            response.raise_for_status()
            data: dict[str, int] = response.json()
            return data

    async def http_requests(self) -> int:
        return (await self.read())["http_requests"]


@pytest.fixture
def stats(devstack: Any) -> ServerStats:
    """The devstack's server-side HTTP request counter."""
    return ServerStats(devstack)
