"""Inside Pyodide: `shared.cache` over FetchTransport(pyfetch) against the devstack
(ENV: REDIS_URL, REDIS_TOKEN, NAMESPACE, REFUSED_URL, HANG_URL). Standard library only:
no pydantic here (plain Pyodide cannot load pydantic_core)."""

import asyncio
import time

from pyodide.http import pyfetch
from pyodide_checks import Checks

from shared.background import background
from shared.cache import Cache
from shared.http import FetchTransport
from shared.redis import Redis, RetryPolicy
from shared.scope import request_scope

ENV: dict[str, str] = globals()["ENV"]
NS = ENV["NAMESPACE"]
checks = Checks()
transport = FetchTransport(pyfetch)
redis = Redis(ENV["REDIS_URL"], ENV["REDIS_TOKEN"], transport=transport, retry=RetryPolicy.never())


class Origin:
    def __init__(self, value: object, delay: float = 0.0) -> None:
        self.value, self.delay, self.calls = value, delay, 0

    async def __call__(self) -> object:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.value


class Clock:
    now = 1_750_000_000_000

    def __call__(self) -> int:
        return self.now


@checks.case
async def miss_then_hit_and_falsy_values() -> None:
    cache = Cache(redis, namespace=NS + "a", timeout="5s")
    for key, value in [("zero", 0), ("empty", ""), ("list", []), ("no", False), ("d", {"x": 1})]:
        origin = Origin(value)
        first = await cache.get_or_load_result(key, origin)
        second = await cache.get_or_load_result(key, origin)
        assert (first.status, second.status, origin.calls) == ("MISS", "HIT", 1), key
        assert second.value == value, (key, second.value)


@checks.case
async def stampede_in_one_request_loads_once() -> None:
    cache = Cache(redis, namespace=NS + "b", timeout="5s")
    origin = Origin("v", delay=0.05)
    async with request_scope():
        results = await asyncio.gather(*(cache.get_or_load_result("k", origin) for _ in range(200)))
    assert origin.calls == 1, origin.calls
    assert {(r.value, r.status) for r in results} == {("v", "MISS")}


@checks.case
async def two_instances_load_once() -> None:
    edges = [Cache(redis, namespace=NS + "c", timeout="5s") for _ in range(2)]
    origin = Origin("v", delay=0.2)

    async def edge(i: int) -> list[str]:
        async with request_scope(f"edge{i}"):
            results = await asyncio.gather(
                *(edges[i].get_or_load_result("k", origin) for _ in range(50))
            )
        return sorted({r.status for r in results})

    statuses = sorted(await asyncio.gather(edge(0), edge(1)))
    assert origin.calls == 1, origin.calls
    assert statuses == [["HIT"], ["MISS"]], statuses


@checks.case
async def negative_caching() -> None:
    cache = Cache(redis, namespace=NS + "d", negative_ttl="30s", timeout="5s")
    origin = Origin(None)
    statuses = [(await cache.get_or_load_result("gone", origin)).status for _ in range(3)]
    assert statuses == ["MISS", "HIT", "HIT"] and origin.calls == 1, (statuses, origin.calls)


@checks.case
async def stale_while_revalidate_with_background_drain() -> None:
    clock = Clock()
    cache = Cache(redis, namespace=NS + "e", ttl="10s", stale_ttl="1h", now_ms=clock, timeout="5s")
    await cache.set("k", "v1")
    clock.now += 11_000
    origin = Origin("v2")
    async with request_scope():
        stale = await cache.get_or_load_result("k", origin)
        assert (stale.status, stale.value, origin.calls) == ("STALE", "v1", 0)
        await background().drain()
    assert origin.calls == 1
    fresh = await cache.get_or_load_result("k", origin)
    assert (fresh.status, fresh.value) == ("HIT", "v2")


async def _bypass(url: str) -> None:
    down = Redis(url, "token", transport=transport, retry=RetryPolicy.never())
    cache = Cache(down, namespace=NS + "f", timeout="300ms")
    started = time.monotonic()
    result = await cache.get_or_load_result("k", Origin("from origin"))
    assert (result.value, result.status) == ("from origin", "BYPASS"), result
    assert time.monotonic() - started < 3.0


@checks.case
async def refused_redis_bypasses() -> None:
    await _bypass(ENV["REFUSED_URL"])


@checks.case
async def hanging_redis_bypasses_after_timeout() -> None:
    await _bypass(ENV["HANG_URL"])


await checks.run()  # noqa: F704
