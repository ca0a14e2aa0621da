"""Multi-region decisions with one slow region: ours vs our single-region limiter.

A private devstack with three Redis regions whose REST answers are delayed by 20, 40
and 150 ms (a near, a middle and a far-away region, `--region-latency-ms`). Per
decision (sliding window, sequential, each with its own identifier) the latency at
p50 and p95 for: MultiRegionRatelimit over the three regions (the first to answer
decides; the synchronisation runs in the background and is awaited off the clock),
and the single-region Ratelimit on the near and on the far region.

The official Python SDK (`upstash-ratelimit`) has no multi-region limiter (only
@upstash/ratelimit in TypeScript has `MultiRegionRatelimit`), so it has no row here.
Target (reported, not gated): multi-region p50 within 10 ms of the near region's,
far below the far region's.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bench.measure import table
from devstack.launch import running_devstack
from shared.ratelimit import MultiRegionRatelimit, Ratelimit, sliding_window
from shared.redis import Redis

LATENCIES_MS = (20, 40, 150)
DECISIONS = 40
LIMIT = 1_000_000_000


async def latencies(limit: Callable[[str], Awaitable[Any]], run_id: str) -> list[float]:
    """Milliseconds per decision; background work is awaited outside the timing."""
    out: list[float] = []
    for n in range(DECISIONS):
        start = time.perf_counter()
        result = await limit(f"bench-mr-{run_id}-{n}")
        out.append((time.perf_counter() - start) * 1000)
        if result.pending is not None:
            await result.pending
    return out


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def _measure(stack: dict[str, Any]) -> str:
    token = stack["redis_rest_token"]
    clients = [Redis(r["redis_rest_url"], token, timeout=10) for r in stack["regions"]]
    prefix = f"bench-mr-{uuid.uuid4().hex}"
    algo = sliding_window(LIMIT, "10 s")
    contenders: dict[str, Callable[[str], Awaitable[Any]]] = {
        "ours, multi-region (3 regions)": MultiRegionRatelimit(
            clients, algo, prefix + ":multi", timeout=10
        ).limit,
        f"ours, single region (near, {LATENCIES_MS[0]} ms)": Ratelimit(
            clients[0], algo, prefix + ":near", timeout=10
        ).limit,
        f"ours, single region (far, {LATENCIES_MS[-1]} ms)": Ratelimit(
            clients[-1], algo, prefix + ":far", timeout=10
        ).limit,
    }
    rows: list[list[object]] = []
    for name, limit in contenders.items():
        await latencies(limit, "warmup")  # scripts loaded, connections open
        samples = await latencies(limit, uuid.uuid4().hex)
        rows.append([name, statistics.median(samples), _p95(samples)])
    rows.append(["official upstash-ratelimit (Python)", "no multi-region feature", ""])
    for client in clients:
        await client.aclose()
    return table(
        "rate limiter: multi-region decision latency, regions delayed "
        f"{'/'.join(map(str, LATENCIES_MS))} ms (target: multi p50 within 10 ms of near)",
        ["limiter", "p50 ms", "p95 ms"],
        rows,
    )


async def run(_stack: dict[str, str]) -> str:
    latency = ",".join(map(str, LATENCIES_MS))
    args = ("--regions", "3", "--region-latency-ms", latency)
    with running_devstack(*args) as stack:
        return await _measure(stack)
