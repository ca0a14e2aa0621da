"""Redis trouble never fails a request: stopped server, HTTP 500, and a server that hangs.

The 500 and hang servers are tiny local aiohttp fakes (fault fakes); "stopped" is a closed
port. Every call returns the loader's value with status BYPASS within a generous bound.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
from aiohttp import ClientSession, web

from shared.cache import Cache
from shared.cache.entry import lock_key
from shared.redis import Redis, RetryPolicy
from shared.scope import request_scope
from tests.conftest import Devstack
from tests.support.loopback import loopback

from .conftest import Origin

TIMEOUT = 0.3
BOUND = 3.0  # generous: a bound on waiting for Redis, not a speed test


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def fault_server() -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """Starts a local server answering every request with one fault ('500' or 'hang')."""
    hung = asyncio.Event()

    async def start(kind: str) -> str:
        async def handler(request: web.Request) -> web.Response:
            if kind == "hang":
                await hung.wait()
            return web.json_response({"error": "ERR internal"}, status=500)

        return await servers.enter_async_context(loopback(handler))

    async with AsyncExitStack() as servers:
        yield start
        hung.set()


async def _assert_bypass(url: str, *, retry: RetryPolicy | None = None) -> None:
    redis = Redis(url, "token", retry=retry or RetryPolicy.never())
    cache = Cache(redis, namespace="faults", timeout=TIMEOUT, stale_ttl="1h")
    loop = asyncio.get_running_loop()
    try:
        origin = Origin({"from": "origin"})
        started = loop.time()
        single = await cache.get_or_load_result("k", origin)
        assert (single.value, single.status) == ({"from": "origin"}, "BYPASS")
        assert loop.time() - started < BOUND

        async def request(i: int) -> tuple[object, str]:
            async with request_scope(f"r{i}"):
                result = await cache.get_or_load_result(f"k{i % 3}", origin)
                return result.value, result.status

        started = loop.time()
        results = await asyncio.gather(*(request(i) for i in range(20)))
        assert all(r == ({"from": "origin"}, "BYPASS") for r in results), results
        assert loop.time() - started < BOUND
        assert await cache.get_or_load("k", Origin(0)) == 0
        assert await cache.get("k") is None
        assert await cache.set("k", 1) is False
        assert await cache.invalidate("k") is False
        assert loop.time() - started < 2 * BOUND
    finally:
        await redis.aclose()


async def test_stopped_server_bypasses() -> None:
    """Connection refused (nothing listens): BYPASS with the loader's value."""
    await _assert_bypass(_closed_port_url())


async def test_stopped_server_bypasses_even_with_client_retries() -> None:
    """The client's own retry policy cannot stretch the wait beyond the cache timeout."""
    await _assert_bypass(_closed_port_url(), retry=RetryPolicy(attempts=5, base_delay=0.5))


async def test_client_retries_of_a_failing_read_stop_at_the_cache_timeout() -> None:
    """A client retrying a refused connection up to 200 times (about 2 s of backoff) still
    answers BYPASS within about the cache timeout: the deadline covers the retries."""
    retry = RetryPolicy(attempts=200, base_delay=0.02, max_delay=0.02)
    redis = Redis(_closed_port_url(), "token", retry=retry)
    cache = Cache(redis, namespace="faults", timeout=TIMEOUT)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        result = await cache.get_or_load_result("k", Origin("v"))
        assert (result.value, result.status) == ("v", "BYPASS")
        assert loop.time() - started < 1.0
    finally:
        await redis.aclose()


async def test_server_answering_500_bypasses(fault_server: Callable[[str], Awaitable[str]]) -> None:
    """HTTP 500 on every request: BYPASS with the loader's value."""
    await _assert_bypass(await fault_server("500"))


async def test_hanging_server_bypasses_after_the_timeout(
    fault_server: Callable[[str], Awaitable[str]],
) -> None:
    """A server that never answers costs at most the cache timeout, then BYPASS."""
    await _assert_bypass(await fault_server("hang"))


async def test_bypass_is_still_single_flight_in_a_request() -> None:
    """With Redis down, concurrent callers in one request still share one origin call."""
    redis = Redis(_closed_port_url(), "token", retry=RetryPolicy.never())
    cache = Cache(redis, namespace="faults", timeout=TIMEOUT)
    origin = Origin("v", delay=0.05)
    try:
        async with request_scope():
            results = await asyncio.gather(
                *(cache.get_or_load_result("k", origin) for _ in range(50))
            )
    finally:
        await redis.aclose()
    assert origin.calls == 1
    assert {(r.value, r.status) for r in results} == {("v", "BYPASS")}


async def test_a_slow_redis_cannot_stretch_the_wait_for_a_lock_holder(devstack: Devstack) -> None:
    """With another loader holding the lock and Redis answering each call slowly (under the
    cache timeout), a miss still loads itself after about `wait_timeout`: the polls are
    bounded in time, not only in number (23 slow polls would add their latency to it)."""
    rest = devstack.redis_rest_url
    delay = 0.3

    async with ClientSession() as upstream, AsyncExitStack() as servers:

        async def slow(request: web.Request) -> web.Response:
            body = await request.read()
            await asyncio.sleep(delay)
            skip = {"host", "content-length", "connection", "transfer-encoding"}
            headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
            async with upstream.post(rest + request.path_qs, data=body, headers=headers) as a:
                return web.Response(
                    status=a.status, body=await a.read(), content_type="application/json"
                )

        url = await servers.enter_async_context(loopback(slow))
        redis = Redis(url, devstack.redis_rest_token, retry=RetryPolicy.never())
        direct = Redis(rest, devstack.redis_rest_token)
        cache = Cache(redis, namespace=f"slow-{uuid.uuid4().hex[:8]}", timeout=1.0, lock_ttl="1s")
        try:
            rkey = cache.key("k")
            await direct.set(lock_key(rkey, cache.namespace), "someone-else", px=60_000)
            loop = asyncio.get_running_loop()
            started = loop.time()
            result = await cache.get_or_load_result("k", Origin("v"))
            took = loop.time() - started
        finally:
            await redis.aclose()
            await direct.aclose()
    assert (result.value, result.status) == ("v", "MISS")
    # get + lock + ~1 s of waiting + the write: about 2.5 s; unbounded polls took 1 s + 18
    # polls x 0.3 s, over 6.5 s.
    assert took < 4.5, took
