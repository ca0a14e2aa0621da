"""The official upstash-redis Python client, as a compatibility oracle, against devstack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from upstash_redis.asyncio import Redis

from tests.conftest import Devstack

pytestmark = pytest.mark.integration


@pytest.fixture
async def redis(devstack: Devstack) -> AsyncIterator[Redis]:
    """The official async client with its defaults (base64 response encoding)."""
    client = Redis(url=devstack.redis_rest_url, token=devstack.redis_rest_token)
    async with client:
        yield client


async def test_basic_commands(redis: Redis, unique_prefix: str) -> None:
    """set/get, incr and hset/hgetall decode as the SDK expects."""
    key = unique_prefix + "k"
    assert await redis.set(key, "héllo", ex=100) is True
    assert await redis.get(key) == "héllo"
    assert await redis.incr(unique_prefix + "n") == 1
    assert await redis.hset(unique_prefix + "h", values={"a": "1", "b": "2"}) == 2
    assert await redis.hgetall(unique_prefix + "h") == {"a": "1", "b": "2"}


async def test_pipeline_and_multi(redis: Redis, unique_prefix: str) -> None:
    """Pipelines and transactions return one decoded result per command."""
    key = unique_prefix + "p"
    pipeline = redis.pipeline()
    pipeline.set(key, "1")
    pipeline.incr(key)
    pipeline.get(key)
    assert await pipeline.exec() == [True, 2, "2"]
    tx = redis.multi()
    tx.incr(key)
    tx.get(key)
    assert await tx.exec() == [3, "3"]


async def test_eval(redis: Redis, unique_prefix: str) -> None:
    """EVAL with the allow-key-locking shebang runs on the stand-in."""
    script = "#!lua flags=allow-key-locking\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])"
    assert await redis.eval(script, keys=[unique_prefix + "e"], args=[5]) == 5
