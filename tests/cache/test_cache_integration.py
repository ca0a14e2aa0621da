"""The cache against the real devstack (Upstash-compatible REST server on Valkey)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pydantic import BaseModel

from shared.background import background
from shared.cache import Cache, decode_entry
from shared.redis import Redis
from shared.scope import request_scope

from .conftest import Clock, Origin, ServerStats

pytestmark = pytest.mark.integration


class OrderV1(BaseModel):
    id: int
    name: str


class OrderV2(BaseModel):
    id: int
    customer: str  # renamed field: old entries no longer validate


async def test_miss_then_hit_with_statuses(redis: Redis[str], namespace: str) -> None:
    """The first call loads (MISS) and writes; the second is a HIT without the loader."""
    cache = Cache(redis, namespace=namespace, ttl="1m")
    origin = Origin({"id": 1, "tags": ["a"]})
    first = await cache.get_or_load_result("order:1", origin)
    second = await cache.get_or_load_result("order:1", origin)
    assert (first.status, second.status) == ("MISS", "HIT")
    assert first.value == second.value == {"id": 1, "tags": ["a"]}
    assert origin.calls == 1
    assert await cache.get("order:1") == {"id": 1, "tags": ["a"]}
    assert 55_000 < await redis.pttl(cache.key("order:1")) <= 63_000  # 1 min + <= 5 % jitter


@pytest.mark.parametrize("falsy", [0, "", [], False, {}])
async def test_falsy_values_are_hits(redis: Redis[str], namespace: str, falsy: Any) -> None:
    """0, "", [], False and {} are cached values, not misses (the seed helper's bug)."""
    cache = Cache(redis, namespace=namespace)
    origin = Origin(falsy)
    assert await cache.get_or_load("k", origin) == falsy
    result = await cache.get_or_load_result("k", origin)
    assert (result.value, result.status, origin.calls) == (falsy, "HIT", 1)


async def test_not_found_is_cached_for_negative_ttl(
    redis: Redis[str], namespace: str, clock: Clock
) -> None:
    """A loader returning None is cached as "not found" for negative_ttl, then reloaded."""
    cache = Cache(redis, namespace=namespace, ttl="1h", negative_ttl="30s", now_ms=clock)
    origin = Origin(None)
    results = [await cache.get_or_load_result("missing", origin) for _ in range(5)]
    assert [r.status for r in results] == ["MISS", "HIT", "HIT", "HIT", "HIT"]
    assert origin.calls == 1 and all(r.value is None for r in results)
    assert await redis.pttl(cache.key("missing")) <= 31_500
    clock.advance(32)
    assert (await cache.get_or_load_result("missing", origin)).status == "MISS"
    assert origin.calls == 2


async def test_not_found_is_not_cached_without_negative_ttl(
    redis: Redis[str], namespace: str
) -> None:
    """Without negative_ttl a None result is not written and the lock is released."""
    cache = Cache(redis, namespace=namespace)
    origin = Origin(None)
    assert await cache.get_or_load("missing", origin) is None
    assert await cache.get_or_load("missing", origin) is None
    assert origin.calls == 2
    assert await redis.exists(cache.key("missing"), f"{namespace}:~lock:missing") == 0


async def test_pydantic_schema_change_is_a_miss(
    redis: Redis[str], namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry written with an old model no longer validates: a logged miss, then replaced."""
    cache = Cache(redis, namespace=namespace)
    old = await cache.get_or_load("order:7", Origin(OrderV1(id=7, name="Ada")), codec=OrderV1)
    assert old == OrderV1(id=7, name="Ada")
    caplog.set_level(logging.WARNING, logger="shared.cache")
    new_origin = Origin(OrderV2(id=7, customer="Ada"))
    result = await cache.get_or_load_result("order:7", new_origin, codec=OrderV2)
    assert (result.value, result.status, new_origin.calls) == (
        OrderV2(id=7, customer="Ada"),
        "MISS",
        1,
    )
    assert "no longer decodes" in caplog.text and "Ada" not in caplog.text
    again = await cache.get_or_load_result("order:7", new_origin, codec=OrderV2)
    assert (again.status, new_origin.calls) == ("HIT", 1)


async def test_foreign_value_under_the_key_is_replaced(redis: Redis[str], namespace: str) -> None:
    """A plain value written by the seed's helper (no envelope) is a miss and gets replaced."""
    cache = Cache(redis, namespace=namespace)
    await redis.set(cache.key("legacy"), '{"v":1}')
    result = await cache.get_or_load_result("legacy", Origin({"v": 2}))
    assert (result.status, result.value) == ("MISS", {"v": 2})
    stored = await redis.get(cache.key("legacy"))
    assert stored is not None and decode_entry(stored) is not None


async def test_set_get_invalidate(redis: Redis[str], namespace: str, stats: ServerStats) -> None:
    """set/get round-trip; invalidate removes several keys in ONE command."""
    cache = Cache(redis, namespace=namespace)
    assert await cache.invalidate("warm-up")  # loads the Lua script once
    assert await cache.set("a", 1) and await cache.set("b", [1]) and await cache.set("c", "")
    assert [await cache.get(k) for k in ("a", "b", "c", "d")] == [1, [1], "", None]
    before = await stats.read()
    assert await cache.invalidate("a", "b", "c")
    after = await stats.read()
    assert after["http_requests"] - before["http_requests"] == 1
    assert after["commands"] - before["commands"] == 1
    assert await redis.exists(cache.key("a"), cache.key("b"), cache.key("c")) == 0
    assert await cache.invalidate()


async def test_hit_is_one_command_shared_with_other_commands(
    redis: Redis[str], namespace: str, stats: ServerStats
) -> None:
    """A hit is one GET that leaves in the same HTTP request as a concurrent command
    (e.g. the rate-limit check) through auto-pipelining."""
    cache = Cache(redis, namespace=namespace)
    await cache.set("hot", {"x": 1})
    async with request_scope():
        before = await stats.read()
        result, count = await asyncio.gather(
            cache.get_or_load_result("hot", Origin("never")),
            redis.incr(f"{namespace}:counter"),
        )
        after = await stats.read()
    assert (result.status, result.value, count) == ("HIT", {"x": 1}, 1)
    assert after["http_requests"] - before["http_requests"] == 1
    assert after["commands"] - before["commands"] == 2


async def test_miss_costs_get_lock_and_one_write(
    redis: Redis[str], namespace: str, stats: ServerStats
) -> None:
    """A miss is GET + SET NX (lock) + one write that also releases the lock: 3 commands."""
    cache = Cache(redis, namespace=namespace)
    await cache.set("warm-up-script", 1)
    await cache.get_or_load("warm-up-miss", Origin(1))  # loads the Lua script once
    before = await stats.read()
    result = await cache.get_or_load_result("cold", Origin(5))
    after = await stats.read()
    assert result.status == "MISS"
    assert after["commands"] - before["commands"] == 3
    assert after["http_requests"] - before["http_requests"] == 3
    assert await redis.exists(f"{namespace}:~lock:cold") == 0


async def test_stampede_in_one_scope_loads_once(redis: Redis[str], namespace: str) -> None:
    """200 concurrent calls on one cold key in one request scope call the loader once."""
    cache = Cache(redis, namespace=namespace)
    origin = Origin({"big": True}, delay=0.05)
    async with request_scope():
        results = await asyncio.gather(
            *(cache.get_or_load_result("cold", origin) for _ in range(200))
        )
    assert origin.calls == 1
    assert {r.status for r in results} == {"MISS"}
    assert all(r.value == {"big": True} for r in results)


async def test_stampede_on_two_edge_instances_loads_once(redis: Redis[str], namespace: str) -> None:
    """200 concurrent calls on one cold key, split over two cache instances ("two edge
    instances", each serving its callers in its own request scope), call the loader once:
    the Redis lock picks one instance, the other polls and reads its write."""
    edges = [Cache(redis, namespace=namespace, timeout="5s") for _ in range(2)]
    origin = Origin("shared value", delay=0.2)

    async def edge(i: int) -> list[str]:
        async with request_scope(f"edge{i}"):
            results = await asyncio.gather(
                *(edges[i].get_or_load_result("cold", origin) for _ in range(100))
            )
        assert all(r.value == "shared value" for r in results)
        return [r.status for r in results]

    statuses = sorted((await asyncio.gather(edge(0), edge(1))), key=lambda s: s[0])
    assert origin.calls == 1
    assert statuses == [["HIT"] * 100, ["MISS"] * 100]


async def test_stampede_across_requests_loads_once(redis: Redis[str], namespace: str) -> None:
    """Concurrent requests (each its own scope, so no in-process sharing) on two instances call
    the loader once; every other request waits for the lock holder's write."""
    edges = [Cache(redis, namespace=namespace, timeout="5s") for _ in range(2)]
    origin = Origin("shared value", delay=0.2)

    async def request(i: int) -> str:
        async with request_scope(f"r{i}"):
            result = await edges[i % 2].get_or_load_result("cold", origin)
            assert result.value == "shared value"
            return result.status

    statuses = await asyncio.gather(*(request(i) for i in range(30)))
    assert origin.calls == 1
    assert statuses.count("MISS") == 1 and statuses.count("HIT") == 29


async def test_crashed_lock_holder_blocks_nobody_for_long(
    redis: Redis[str], namespace: str
) -> None:
    """A lock left by a crashed holder makes others wait at most wait_timeout, then load."""
    cache = Cache(redis, namespace=namespace, lock_ttl="10s", wait_timeout="200ms")
    await redis.set(f"{namespace}:~lock:orphan", "someone-dead", px=10_000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await cache.get_or_load_result("orphan", Origin(42))
    assert (result.status, result.value) == ("MISS", 42)
    assert loop.time() - started < 2.0
    assert await cache.get("orphan") == 42


async def test_released_lock_without_value_stops_waiting(redis: Redis[str], namespace: str) -> None:
    """When the holder releases the lock without writing, waiters stop polling and load."""
    cache = Cache(redis, namespace=namespace, lock_ttl="10s")
    lock = f"{namespace}:~lock:k"
    await redis.set(lock, "holder", px=10_000)

    async def release_soon() -> None:
        await asyncio.sleep(0.05)  # the holder's (failed) work
        await redis.delete(lock)

    loop = asyncio.get_running_loop()
    started = loop.time()
    result, _ = await asyncio.gather(cache.get_or_load_result("k", Origin(1)), release_soon())
    assert (result.status, result.value) == ("MISS", 1)
    assert loop.time() - started < 2.0  # far below wait_timeout (10 s)


async def test_loader_error_propagates_and_releases_the_lock(
    redis: Redis[str], namespace: str
) -> None:
    """The origin's exception reaches the caller, nothing is cached, the lock is released."""
    cache = Cache(redis, namespace=namespace)

    async def broken() -> int:
        raise LookupError("origin down")

    async with request_scope():
        with pytest.raises(LookupError, match="origin down"):
            await cache.get_or_load("k", broken)
        await background().drain()
    assert await redis.exists(cache.key("k"), f"{namespace}:~lock:k") == 0
    assert await cache.get_or_load("k", Origin(3)) == 3


async def test_stale_while_revalidate_serves_stale_and_refreshes_once(
    redis: Redis[str], namespace: str, clock: Clock
) -> None:
    """Past its TTL an entry is served at once (STALE) while ONE background refresh, shared by
    concurrent stale hits from several requests, rewrites it."""
    cache = Cache(redis, namespace=namespace, ttl="10s", stale_ttl="1h", now_ms=clock)
    await cache.get_or_load("swr", Origin("v1"))
    clock.advance(11)
    gate = asyncio.Event()
    served: list[tuple[str, Any]] = []
    calls = 0

    async def origin() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()  # the origin answers only once every response has been served
        return "v2"

    async def request(i: int) -> None:
        async with request_scope(f"swr{i}"):
            result = await cache.get_or_load_result("swr", origin)
            served.append((result.status, result.value))
            if len(served) == 20:
                gate.set()
            await background().drain()  # what waitUntil / the Vercel adapter does

    await asyncio.wait_for(asyncio.gather(*(request(i) for i in range(20))), 30)
    assert set(served) == {("STALE", "v1")}
    assert calls == 1
    fresh = await cache.get_or_load_result("swr", origin)
    assert (fresh.status, fresh.value, calls) == ("HIT", "v2", 1)
    clock.advance(2 * 3600)  # beyond the stale window, jitter included
    expired = await cache.get_or_load_result("swr", Origin("v3"))
    assert (expired.status, expired.value) == ("MISS", "v3")


async def test_redis_key_ttl_covers_the_stale_window(redis: Redis[str], namespace: str) -> None:
    """The Redis TTL is the fresh TTL plus stale_ttl, each jittered by at most 5 %."""
    cache = Cache(redis, namespace=namespace, ttl="10s", stale_ttl="100s")
    await cache.set("k", 1)
    assert 105_000 < await redis.pttl(cache.key("k")) <= 115_500


async def test_two_requests_never_share_a_flight(redis: Redis[str], namespace: str) -> None:
    """Concurrent requests do not await each other's in-process flight (Workers isolation):
    each request scope has its own, and only Redis coordinates them."""
    cache = Cache(redis, namespace=namespace)
    seen: list[int] = []

    async def request(i: int) -> None:
        async with request_scope(f"r{i}"):
            await cache.get_or_load("k", Origin(i))
            seen.append(cache._flight.in_flight())

    await asyncio.gather(request(1), request(2))
    assert seen == [0, 0]


class GatedOrigin:
    """A loader that returns the value it read at call time only once released: a read that
    happened before a DELETE and answers after it."""

    def __init__(self, value: object) -> None:
        self.value = value
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> object:
        self.calls += 1
        seen = self.value
        self.started.set()
        await self.release.wait()
        return seen


async def _in_request(work: Any) -> Any:
    async with request_scope():
        result = await work
        await background().drain()
        return result


async def test_invalidation_during_a_miss_defeats_its_write(
    redis: Redis[str], namespace: str
) -> None:
    """A miss (lock holder) whose load began before an invalidation does not write the old
    value back: the next read is a MISS that loads again."""
    cache = Cache(redis, namespace=namespace, ttl="1h")
    origin = GatedOrigin({"id": 1, "status": "live"})
    load = asyncio.create_task(_in_request(cache.get_or_load_result("order:1", origin)))
    await asyncio.wait_for(origin.started.wait(), 5)
    assert await cache.invalidate("order:1")  # the order is deleted meanwhile
    origin.release.set()
    first = await asyncio.wait_for(load, 5)
    assert (first.status, first.value) == ("MISS", {"id": 1, "status": "live"})
    assert await redis.exists(cache.key("order:1"), f"{namespace}:~lock:order:1") == 0
    after = await cache.get_or_load_result("order:1", Origin(None))
    assert (after.status, after.value) == ("MISS", None)


async def test_invalidation_during_a_waiters_load_defeats_its_write(
    redis: Redis[str], namespace: str
) -> None:
    """A caller that waited for a lock holder and then loaded itself does not write back a value
    read before an invalidation."""
    cache = Cache(redis, namespace=namespace, ttl="1h", lock_ttl="10s", wait_timeout="100ms")
    await redis.set(f"{namespace}:~lock:order:2", "someone-dead", px=10_000)
    origin = GatedOrigin("old")
    load = asyncio.create_task(_in_request(cache.get_or_load_result("order:2", origin)))
    await asyncio.wait_for(origin.started.wait(), 5)
    assert await cache.invalidate("order:2")
    origin.release.set()
    assert (await asyncio.wait_for(load, 5)).value == "old"
    assert await cache.get("order:2") is None


async def test_invalidation_during_a_refresh_defeats_its_write(
    redis: Redis[str], namespace: str, clock: Clock
) -> None:
    """A stale-while-revalidate refresh that read before an invalidation does not write back."""
    cache = Cache(redis, namespace=namespace, ttl="10s", stale_ttl="1h", now_ms=clock)
    await cache.set("order:3", "v1")
    clock.advance(11)
    origin = GatedOrigin("v2-read-before-delete")

    async def stale_request() -> Any:
        async with request_scope():
            result = await cache.get_or_load_result("order:3", origin)
            await asyncio.wait_for(origin.started.wait(), 5)
            assert await cache.invalidate("order:3")
            origin.release.set()
            await background().drain()  # the refresh finishes
            return result

    stale = await asyncio.wait_for(stale_request(), 10)
    assert (stale.status, stale.value) == ("STALE", "v1")
    assert await cache.get("order:3") is None


async def test_a_load_after_an_invalidation_is_cached(redis: Redis[str], namespace: str) -> None:
    """An invalidation defeats only loads that began before it: the next load is cached."""
    cache = Cache(redis, namespace=namespace, ttl="1h")
    assert await cache.invalidate("order:4")
    assert (await cache.get_or_load_result("order:4", Origin("new"))).status == "MISS"
    assert (await cache.get_or_load_result("order:4", Origin("never"))).status == "HIT"
