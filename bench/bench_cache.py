"""Our cache vs the seed's naive get-then-set (written with the official `upstash-redis`
async client), same devstack, one run: hit latency and origin calls under a stampede."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from upstash_redis.asyncio import Redis as OfficialRedis

from bench.measure import ServerCounter, compare, ratio, table
from shared.cache import Cache
from shared.redis import Redis
from shared.scope import request_scope

SEQUENTIAL = 300
STAMPEDE = 200
ORIGIN_DELAY = 0.1  # seconds of simulated origin latency


class Origin:
    """A counting loader with fixed latency."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(ORIGIN_DELAY)
        return {"id": 42, "items": list(range(10))}


async def naive_get_cached(redis: OfficialRedis, key: str, ttl: int, fetcher: Origin) -> Any:
    """The seed helper (protocols.md section 0): GET, truthiness check, else fetch + SET EX."""
    cached = await redis.get(key)
    if cached:
        return json.loads(cached)
    value = await fetcher()
    await redis.set(key, json.dumps(value), ex=ttl)
    return value


async def run(stack: dict[str, str]) -> str:
    url, token = stack["redis_rest_url"], stack["redis_rest_token"]
    ours = Redis(url, token)
    theirs = OfficialRedis(url=url, token=token)
    counter = ServerCounter(url, token)
    base = f"bench-cache-{uuid.uuid4().hex[:12]}"
    cache = Cache(ours, namespace=base, ttl="5m", timeout="10s")
    warm = Origin()
    await cache.get_or_load("hot", warm)
    await naive_get_cached(theirs, f"{base}-naive:hot", 300, warm)

    ours_hit, theirs_hit = await compare(  # interleaved rounds, medians
        SEQUENTIAL,
        lambda i: cache.get_or_load("hot", warm),
        lambda i: naive_get_cached(theirs, f"{base}-naive:hot", 300, warm),
    )

    async def stampede_ours_one_scope() -> tuple[int, float, int]:
        origin = Origin()
        before, start = counter.read()["http_requests"], time.perf_counter()
        async with request_scope():
            await asyncio.gather(*(cache.get_or_load("cold1", origin) for _ in range(STAMPEDE)))
        return origin.calls, time.perf_counter() - start, counter.read()["http_requests"] - before

    async def stampede_ours_many_requests() -> tuple[int, float, int]:
        origin = Origin()
        edges = [cache, Cache(ours, namespace=base, ttl="5m", timeout="10s")]

        async def request(i: int) -> None:
            async with request_scope(f"r{i}"):
                await edges[i % 2].get_or_load("cold2", origin)

        before, start = counter.read()["http_requests"], time.perf_counter()
        await asyncio.gather(*(request(i) for i in range(STAMPEDE)))
        return origin.calls, time.perf_counter() - start, counter.read()["http_requests"] - before

    async def stampede_naive() -> tuple[int, float, int]:
        origin = Origin()
        before, start = counter.read()["http_requests"], time.perf_counter()
        key = f"{base}-naive:cold"
        await asyncio.gather(*(naive_get_cached(theirs, key, 300, origin) for _ in range(STAMPEDE)))
        return origin.calls, time.perf_counter() - start, counter.read()["http_requests"] - before

    one_scope = await stampede_ours_one_scope()
    many = await stampede_ours_many_requests()
    naive = await stampede_naive()
    await ours.aclose()
    await theirs.close()

    rows: list[tuple[object, ...]] = [
        (
            "hit, sequential, wall us/op (target >= 1.20x)",
            ours_hit.wall_us,
            theirs_hit.wall_us,
            ratio(ours_hit.wall_us, theirs_hit.wall_us),
        ),
        (
            "hit, sequential, client CPU us/op",
            ours_hit.cpu_us,
            theirs_hit.cpu_us,
            ratio(ours_hit.cpu_us, theirs_hit.cpu_us),
        ),
        (f"{STAMPEDE}-way cold-key stampede, origin calls", one_scope[0], naive[0], ""),
        ("  ... wall ms", one_scope[1] * 1e3, naive[1] * 1e3, ratio(one_scope[1], naive[1])),
        ("  ... HTTP requests to Redis", one_scope[2], naive[2], ""),
        (f"same, {STAMPEDE} separate requests on 2 instances, origin calls", many[0], naive[0], ""),
        ("  ... wall ms", many[1] * 1e3, naive[1] * 1e3, ratio(many[1], naive[1])),
        ("  ... HTTP requests to Redis", many[2], naive[2], ""),
    ]
    return table(
        f"Cache vs naive get-then-set (upstash-redis), origin {ORIGIN_DELAY * 1e3:g} ms",
        ["measure", "ours", "naive", "ours vs naive"],
        rows,
    )
