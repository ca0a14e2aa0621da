"""The benchmarks' pure parts: every bench/bench_*.py imports and has a `run(stack)`, and the
timing, table and ratio helpers compute what their tables print. The runs themselves are in
tests/devstack/test_bench_smoke.py."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import pkgutil
from typing import Any

import pytest

import bench
from bench import bench_app, bench_cache, bench_multiregion, bench_worker, measure

BENCH_MODULES = sorted(
    m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
)


def test_the_bench_modules_are_the_known_ones() -> None:
    """`python -m bench` finds exactly the modules these tests cover."""
    assert BENCH_MODULES == [
        "bench_app",
        "bench_cache",
        "bench_multiregion",
        "bench_ratelimit",
        "bench_redis",
        "bench_worker",
    ]


@pytest.mark.parametrize("name", BENCH_MODULES)
def test_every_bench_module_imports_and_has_an_async_run(name: str) -> None:
    """Each bench module imports (its SDKs and helpers exist) and exposes `async run(stack)`,
    which `python -m bench` calls."""
    module = importlib.import_module(f"bench.{name}")
    assert inspect.iscoroutinefunction(module.run)
    assert list(inspect.signature(module.run).parameters) in (["stack"], ["_stack"])


def test_table_aligns_columns_and_formats_numbers() -> None:
    """`table` prints the title, an underline, the header, a rule and one padded line per row;
    floats get two decimals below 1000 and thousands separators above."""
    text = measure.table("T", ["name", "value"], [["a", 1.5], ["long name", 12345.6]])
    assert text.splitlines() == [
        "T",
        "-",
        "name       value ",
        "---------  ------",
        "a          1.50  ",
        "long name  12,346",
    ]
    assert text.endswith("\n")


@pytest.mark.parametrize(
    ("ours", "theirs", "higher", "expected"),
    [
        (1.0, 2.0, False, "2.00x"),  # lower is better: ours takes half the time
        (2.0, 1.0, True, "2.00x"),  # higher is better: ours does twice the work
        (0.0, 1.0, False, "n/a"),
        (1.0, 0.0, True, "n/a"),
    ],
)
def test_ratio_reads_as_our_advantage(
    ours: float, theirs: float, higher: bool, expected: str
) -> None:
    """`ratio` is how many times better ours is, whichever direction is better; n/a on zero."""
    assert measure.ratio(ours, theirs, higher_is_better=higher) == expected


def test_timing_per_operation() -> None:
    """A Timing's per-operation figures are its totals divided by the count, in microseconds."""
    timing = measure.Timing(wall_s=0.5, cpu_s=0.25, count=1000)
    assert timing.wall_us == pytest.approx(500.0)
    assert timing.cpu_us == pytest.approx(250.0)


def test_compare_runs_both_sides_alternately_with_a_warm_up() -> None:
    """`compare` warms each side up with a fifth of the count, then runs `rounds` rounds of
    `count` calls per side, alternating which side goes first."""
    calls: list[str] = []

    def side(label: str) -> Any:
        async def op(_i: int) -> None:
            calls.append(label)

        return op

    ours, theirs = asyncio.run(measure.compare(10, side("o"), side("t"), rounds=3))
    warm_up = ["o"] * 2 + ["t"] * 2
    rounds = [("o", "t"), ("t", "o"), ("o", "t")]
    assert calls == warm_up + [label for pair in rounds for label in pair for _ in range(10)]
    assert ours.count == theirs.count == 10


def test_import_time_is_measured_in_a_fresh_interpreter() -> None:
    """`import_time_us` sums the top-level rows of `-X importtime`: a real module costs > 0."""
    assert measure.import_time_us("json", runs=1) > 0


def test_multiregion_p95_is_the_nearest_rank() -> None:
    """`_p95` picks the sample at 95 % of the sorted list (the largest of a short one)."""
    assert bench_multiregion._p95([float(n) for n in range(101)]) == 95.0
    assert bench_multiregion._p95([3.0, 1.0, 2.0]) == 3.0


def test_multiregion_latencies_time_each_decision_and_await_its_background_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`latencies` makes DECISIONS decisions, one identifier each, and awaits each result's
    `pending` work outside the timing."""
    monkeypatch.setattr(bench_multiregion, "DECISIONS", 3)
    seen: list[str] = []
    synced: list[str] = []

    class Decision:
        def __init__(self, identifier: str) -> None:
            self.pending = asyncio.ensure_future(self._sync(identifier))

        @staticmethod
        async def _sync(identifier: str) -> None:
            synced.append(identifier)

    async def limit(identifier: str) -> Decision:
        seen.append(identifier)
        return Decision(identifier)

    samples = asyncio.run(bench_multiregion.latencies(limit, "run"))
    assert seen == synced == ["bench-mr-run-0", "bench-mr-run-1", "bench-mr-run-2"]
    assert len(samples) == 3 and all(s >= 0 for s in samples)


def test_naive_cache_loads_once_then_reads_the_stored_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The seed's get-then-set helper calls the origin on a miss, stores the JSON with its TTL,
    and answers the next call from the store."""
    monkeypatch.setattr(bench_cache, "ORIGIN_DELAY", 0.0)

    class Store:
        """A dict standing in for the official client's `get`/`set`."""

        def __init__(self) -> None:
            self.data: dict[str, str] = {}
            self.ttls: dict[str, int] = {}

        async def get(self, key: str) -> str | None:
            return self.data.get(key)

        async def set(self, key: str, value: str, ex: int) -> None:
            self.data[key], self.ttls[key] = value, ex

    store, origin = Store(), bench_cache.Origin()

    async def twice() -> list[Any]:
        return [await bench_cache.naive_get_cached(store, "k", 60, origin) for _ in range(2)]  # type: ignore[arg-type]

    first, second = asyncio.run(twice())
    assert first == second == {"id": 42, "items": list(range(10))}
    assert origin.calls == 1 and store.ttls == {"k": 60}


def test_app_bench_alternates_sides_and_judges_targets() -> None:
    """The app bench alternates which side runs first, keeps medians, and marks a ratio
    against a `<=`/`>=` target as met or not."""
    order: list[str] = []

    def side(label: str, value: float) -> Any:
        def run() -> float:
            order.append(label)
            return value

        return run

    assert bench_app._alternate(3, side("o", 1.0), side("p", 2.0)) == (1.0, 2.0)
    assert order == ["o", "p", "p", "o", "o", "p"]
    assert bench_app._met(0.5, "<= 0.6x") and not bench_app._met(0.7, "<= 0.6x")
    assert bench_app._met(2.0, ">= 1.5x") and not bench_app._met(1.0, "")
    assert bench_app._row("cpu", 1.0, 2.0, "<= 0.6x", " ms")[3:] == ("0.50x", "<= 0.6x", "met")


def test_worker_bench_reads_a_process_cpu_clock() -> None:
    """The Worker bench's CPU reading (every thread's scheduler clock) is positive and grows
    for a process that works."""
    before = bench_worker._cpu_ns(os.getpid())
    sum(n * n for n in range(200_000))
    assert 0 < before < bench_worker._cpu_ns(os.getpid())
