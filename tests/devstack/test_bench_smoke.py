"""The benchmarks run end to end against the devstack with tiny counts (module constants
patched) and return their tables with every row: `make bench` cannot rot unnoticed.

bench_app (slow: uvicorn cold starts) and bench_worker (needs node) are left out; their pure
helpers are covered in tests/unit/test_bench_helpers.py.
"""

from __future__ import annotations

import functools

import pytest

from bench import bench_cache, bench_multiregion, bench_ratelimit, bench_redis, measure
from tests.conftest import Devstack

pytestmark = pytest.mark.integration


def table_rows(text: str) -> list[list[str]]:
    """The body rows of a `measure.table` text, split on its two-space column gaps."""
    lines = text.splitlines()
    assert set(lines[1]) == {"-"} and set(lines[3].replace(" ", "")) == {"-"}, text
    return [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in lines[4:]]


async def test_multiregion_bench_returns_a_row_per_limiter(
    devstack: Devstack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench_multiregion starts its three delayed regions and reports p50/p95 for the
    multi-region limiter and both single-region ones, plus the official SDK's missing row."""
    monkeypatch.setattr(bench_multiregion, "DECISIONS", 2)
    monkeypatch.setattr(bench_multiregion, "LATENCIES_MS", (1, 2, 5))
    text = await bench_multiregion.run(devstack.raw)
    assert "regions delayed 1/2/5 ms" in text.splitlines()[0]
    rows = table_rows(text)
    assert [row[0] for row in rows] == [
        "ours, multi-region (3 regions)",
        "ours, single region (near, 1 ms)",
        "ours, single region (far, 5 ms)",
        "official upstash-ratelimit (Python)",
    ]
    for row in rows[:3]:
        p50, p95 = (float(cell.replace(",", "")) for cell in row[1:])
        assert 0 < p50 <= p95
    assert rows[3][1:] == ["no multi-region feature"]


async def test_ratelimit_bench_returns_a_row_per_concurrency_and_limiter(
    devstack: Devstack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench_ratelimit reports every limiter at every concurrency, with the server's counts."""
    monkeypatch.setattr(bench_ratelimit, "PER_WORKER", {1: 2, 4: 1})
    rows = table_rows(await bench_ratelimit.run(devstack.raw))
    assert [(row[0], row[1]) for row in rows] == [
        (concurrency, name)
        for concurrency in ("1", "4")
        for name in ("ours", "ours, auto-pipelining off", "official upstash-ratelimit")
    ]


async def test_redis_bench_returns_every_measure(
    devstack: Devstack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench_redis reports GET, SET EX, a concurrent burst and import time, ours vs official."""
    monkeypatch.setattr(bench_redis, "SEQUENTIAL", 2)
    monkeypatch.setattr(bench_redis, "CONCURRENT", 5)
    monkeypatch.setattr(
        bench_redis, "import_time_us", functools.partial(measure.import_time_us, runs=1)
    )
    rows = table_rows(await bench_redis.run(devstack.raw))
    assert len(rows) == 7 and all(len(row) == 4 for row in rows)
    assert rows[5][0] == "5 concurrent GETs, HTTP requests"


async def test_cache_bench_returns_every_measure(
    devstack: Devstack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench_cache reports hit latency and both stampedes, ours vs the naive helper."""
    monkeypatch.setattr(bench_cache, "SEQUENTIAL", 2)
    monkeypatch.setattr(bench_cache, "STAMPEDE", 4)
    monkeypatch.setattr(bench_cache, "ORIGIN_DELAY", 0.01)
    rows = table_rows(await bench_cache.run(devstack.raw))
    assert len(rows) == 8
    assert rows[2][0] == "4-way cold-key stampede, origin calls"
