"""Small timing helpers and a plain-text table printer for the benchmarks."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from devstack.dev import DEV_ORDER_TOKEN_SECRET
from shared.orders.records import Item, OrderRecord, OrderTokens, new_order_id, order_key
from shared.redis import Redis


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float
    count: int

    @property
    def wall_us(self) -> float:
        return self.wall_s / self.count * 1e6

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.count * 1e6


async def timed(count: int, op: Callable[[int], Awaitable[object]]) -> Timing:
    """Runs `op(i)` sequentially `count` times, measuring wall and process CPU time."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        await op(i)
    return Timing(time.perf_counter() - wall, time.process_time() - cpu, count)


async def compare(
    count: int,
    ours: Callable[[int], Awaitable[object]],
    theirs: Callable[[int], Awaitable[object]],
    rounds: int = 5,
) -> tuple[Timing, Timing]:
    """Alternates the two sides for `rounds` rounds (a warm-up round first, discarded) and
    keeps each side's median round, so neither benefits from running second or first."""
    await timed(max(1, count // 5), ours)
    await timed(max(1, count // 5), theirs)
    a: list[Timing] = []
    b: list[Timing] = []
    for n in range(rounds):
        first, second = (ours, theirs) if n % 2 == 0 else (theirs, ours)
        t1 = await timed(count, first)
        t2 = await timed(count, second)
        a.append(t1 if n % 2 == 0 else t2)
        b.append(t2 if n % 2 == 0 else t1)
    return _median(a), _median(b)


def _median(samples: list[Timing]) -> Timing:
    ordered = sorted(samples, key=lambda t: t.wall_s)
    return ordered[len(ordered) // 2]


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, header))] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [title, "-" * len(title)]
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 1000 else f"{value:,.0f}"
    return str(value)


def ratio(ours: float, theirs: float, higher_is_better: bool = False) -> str:
    if ours <= 0 or theirs <= 0:
        return "n/a"
    value = ours / theirs if higher_is_better else theirs / ours
    return f"{value:.2f}x"


class ServerCounter:
    """Reads the devstack's request counters (devstack-only endpoint)."""

    def __init__(self, rest_url: str, token: str) -> None:
        self._url = rest_url + "/_devstack/stats"
        self._headers = {"Authorization": f"Bearer {token}"}

    def read(self) -> dict[str, int]:
        data: dict[str, int] = httpx.get(self._url, headers=self._headers).json()
        return data


def import_time_us(module: str, runs: int = 5) -> float:
    """Median cumulative import time of `module` in a fresh interpreter (-X importtime)."""
    samples = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=True,
        )
        total = 0
        for line in proc.stderr.splitlines():
            # "import time: self [us] | cumulative | imported package"; top-level rows
            # are those whose name has no leading indentation.
            parts = line.split("|")
            if len(parts) == 3 and parts[2].startswith(" ") and not parts[2].startswith("  "):
                try:
                    total += int(parts[1].strip())
                except ValueError:
                    continue
        samples.append(total)
    return statistics.median(samples)


async def seed_order(stack: dict[str, str], *copies: str) -> tuple[str, dict[str, str]]:
    """Stores one order (and the same record under each key in `copies`) in the stack's
    Redis for an hour; returns its id and the `Authorization` header that reads it."""
    order_id = new_order_id()
    record = OrderRecord(
        id=order_id,
        customer_email="bench@example.com",
        items=(Item("SKU-1", 2, 1250),),
        currency="EUR",
        total_cents=2500,
        created_at="2026-01-01T00:00:00+00:00",
    )
    redis = Redis(stack["redis_rest_url"], stack["redis_rest_token"])
    try:
        for key in (order_key(order_id), *copies):
            await redis.set(key, record.to_json(), ex=3600)
    finally:
        await redis.aclose()
    token = OrderTokens(DEV_ORDER_TOKEN_SECRET).issue(order_id)
    return order_id, {"authorization": f"Bearer {token}"}
