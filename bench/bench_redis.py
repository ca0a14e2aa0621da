"""Our Redis client vs the official `upstash-redis` async client, same devstack, one run."""

from __future__ import annotations

import asyncio
import time
import uuid

from upstash_redis.asyncio import Redis as OfficialRedis

from bench.measure import ServerCounter, compare, import_time_us, ratio, table
from shared.redis import Redis

SEQUENTIAL = 200
CONCURRENT = 1000


async def run(stack: dict[str, str]) -> str:
    url, token = stack["redis_rest_url"], stack["redis_rest_token"]
    ours = Redis(url, token)
    theirs = OfficialRedis(url=url, token=token)
    key = f"bench:{uuid.uuid4().hex}"
    counter = ServerCounter(url, token)
    await ours.set(key, "value")
    await theirs.get(key)  # warm both connection pools

    ours_get, theirs_get = await compare(
        SEQUENTIAL, lambda i: ours.get(key), lambda i: theirs.get(key)
    )
    ours_set, theirs_set = await compare(
        SEQUENTIAL,
        lambda i: ours.set(f"{key}:{i}", "v", ex=60),
        lambda i: theirs.set(f"{key}:{i}", "v", ex=60),
    )

    async def burst(client: object) -> tuple[float, int]:
        before = counter.read()["http_requests"]
        start = time.perf_counter()
        await asyncio.gather(*(client.get(key) for _ in range(CONCURRENT)))  # type: ignore[attr-defined]
        wall = time.perf_counter() - start
        return wall, counter.read()["http_requests"] - before

    ours_wall, ours_reqs = await burst(ours)
    theirs_wall, theirs_reqs = await burst(theirs)
    ours_import = import_time_us("shared.redis")
    theirs_import = import_time_us("upstash_redis.asyncio")
    await ours.aclose()
    await theirs.close()

    rows = [
        (
            "GET sequential, wall us/op",
            ours_get.wall_us,
            theirs_get.wall_us,
            ratio(ours_get.wall_us, theirs_get.wall_us),
        ),
        (
            "GET sequential, client CPU us/op (target >= 1.50x)",
            ours_get.cpu_us,
            theirs_get.cpu_us,
            ratio(ours_get.cpu_us, theirs_get.cpu_us),
        ),
        (
            "SET EX sequential, wall us/op",
            ours_set.wall_us,
            theirs_set.wall_us,
            ratio(ours_set.wall_us, theirs_set.wall_us),
        ),
        (
            "SET EX sequential, client CPU us/op",
            ours_set.cpu_us,
            theirs_set.cpu_us,
            ratio(ours_set.cpu_us, theirs_set.cpu_us),
        ),
        (
            f"{CONCURRENT} concurrent GETs, wall ms",
            ours_wall * 1e3,
            theirs_wall * 1e3,
            ratio(ours_wall, theirs_wall),
        ),
        (
            f"{CONCURRENT} concurrent GETs, HTTP requests",
            ours_reqs,
            theirs_reqs,
            ratio(ours_reqs, theirs_reqs),
        ),
        (
            "import time, us (median of 5)",
            ours_import,
            theirs_import,
            ratio(ours_import, theirs_import),
        ),
    ]
    return table(
        "Redis client: ours vs upstash-redis (asyncio)",
        ("measure", "ours", "official", "advantage"),
        rows,
    )
