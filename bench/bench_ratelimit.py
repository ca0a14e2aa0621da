"""Our rate limiter vs the official `upstash-ratelimit` (async), same devstack, one run.

Sliding window (the seed's algorithm), a limit high enough that every call runs the
script. Decisions per second at concurrency 1 and 64, and per decision the HTTP
requests and Redis round trips counted by the devstack. Targets (reported, not
gated): at least 1.5x the official throughput, one round trip per decision.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from upstash_ratelimit.asyncio import Ratelimit as OfficialRatelimit
from upstash_ratelimit.asyncio import SlidingWindow
from upstash_redis.asyncio import Redis as OfficialRedis

from bench.measure import ServerCounter, table
from shared.http import HttpxTransport
from shared.ratelimit import Ratelimit, sliding_window
from shared.redis import Redis

LIMIT = 1_000_000_000
PER_WORKER = {1: 200, 64: 10}


async def measure(
    limit: Callable[[str], Awaitable[Any]], concurrency: int, counter: ServerCounter
) -> tuple[float, float, float]:
    """(decisions/s, HTTP requests per decision, Redis round trips per decision)."""
    run_id = uuid.uuid4().hex
    per_worker = PER_WORKER[concurrency]

    async def worker(n: int) -> None:
        for _ in range(per_worker):
            await limit(f"bench-{run_id}-{n}")

    before = counter.read()
    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    wall = time.perf_counter() - start
    after = counter.read()
    decisions = concurrency * per_worker
    return (
        decisions / wall,
        (after["http_requests"] - before["http_requests"]) / decisions,
        (after["redis_round_trips"] - before["redis_round_trips"]) / decisions,
    )


async def run(stack: dict[str, str]) -> str:
    url, token = stack["redis_rest_url"], stack["redis_rest_token"]
    counter = ServerCounter(url, token)
    prefix = f"bench-rl-{uuid.uuid4().hex}"
    redis = Redis(url, token, timeout=10)
    # The default HttpxTransport keeps 20 idle connections: at concurrency 64 without
    # auto-pipelining it would reconnect constantly, so give this row a pool of 64.
    pool = httpx.AsyncClient(limits=httpx.Limits(max_connections=100, max_keepalive_connections=64))
    plain = Redis(url, token, timeout=10, auto_pipeline=False, transport=HttpxTransport(pool))
    ours = Ratelimit(redis, sliding_window(LIMIT, "10 s"), prefix + ":ours", timeout=10)
    ours_plain = Ratelimit(plain, sliding_window(LIMIT, "10 s"), prefix + ":plain", timeout=10)
    official = OfficialRatelimit(
        OfficialRedis(url=url, token=token, allow_telemetry=False),
        SlidingWindow(max_requests=LIMIT, window=10, unit="s"),
        prefix=prefix + ":official",
    )
    contenders: dict[str, Callable[[str], Awaitable[Any]]] = {
        "ours": ours.limit,
        "ours, auto-pipelining off": ours_plain.limit,
        "official upstash-ratelimit": official.limit,
    }
    for limit in contenders.values():  # load the scripts, warm the connection pools
        await limit(f"warmup-{prefix}")

    rows: list[list[object]] = []
    for concurrency in PER_WORKER:
        results = {name: await measure(fn, concurrency, counter) for name, fn in contenders.items()}
        theirs = results["official upstash-ratelimit"][0]
        for name, (rate, http, trips) in results.items():
            speedup = f"{rate / theirs:.2f}x" if theirs else "n/a"
            rows.append([concurrency, name, rate, speedup, http, trips])
    await redis.aclose()
    await pool.aclose()
    return table(
        "rate limiter: sliding window decisions (target: >= 1.5x official, 1 round trip)",
        [
            "concurrency",
            "limiter",
            "decisions/s",
            "vs official",
            "HTTP req/decision",
            "Redis trips/decision",
        ],
        rows,
    )
