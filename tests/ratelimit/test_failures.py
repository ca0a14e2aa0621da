"""A slow or failing Redis: explicit fail-open / fail-closed, never an exception."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from shared.http.transport import HttpRequest, HttpResponse
from shared.ratelimit import (
    Ratelimit,
    RateLimitResult,
    fixed_window,
    sliding_window,
    token_bucket,
)
from shared.redis import Redis, RetryPolicy
from shared.scope import request_scope
from tests.support.loopback import loopback


@pytest.fixture
async def fault_url() -> AsyncIterator[str]:
    """A fake REST endpoint: /hang never answers, /fail answers 500, /garbage answers nonsense."""

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.json_response({"result": None})

    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"error": "ERR server exploded"}, status=500)

    async def garbage(request: web.Request) -> web.Response:
        return web.json_response({"result": "not an array"})

    async def infinite(request: web.Request) -> web.Response:
        # Valid JSON for Python's parser; int(inf) raises OverflowError, not a Redis error.
        return web.Response(text='{"result":[1,Infinity,5]}', content_type="application/json")

    routes = {"/hang": hang, "/fail": fail, "/garbage": garbage, "/infinite": infinite}

    async def route(request: web.Request) -> web.Response:
        return await routes[request.path](request)

    async with loopback(route, method="POST") as url:
        yield url


def limiter(url: str, on_error: str, timeout: str = "5s") -> Ratelimit:
    redis = Redis(url, "token", retry=RetryPolicy.never())
    return Ratelimit(redis, fixed_window(5, "10s"), "p", timeout=timeout, on_error=on_error)  # type: ignore[arg-type]


@pytest.mark.parametrize(("on_error", "success"), [("allow", True), ("deny", False)])
async def test_slow_redis_gives_reason_timeout(
    fault_url: str, on_error: str, success: bool
) -> None:
    """A Redis slower than the timeout decides by on_error, with reason "timeout", fast."""
    rl = limiter(fault_url + "/hang", on_error, timeout="100ms")
    started = asyncio.get_running_loop().time()
    result = await rl.limit("id")
    assert asyncio.get_running_loop().time() - started < 1.0
    assert (result.success, result.reason, result.remaining) == (success, "timeout", 0)
    headers = rl.headers(result)
    assert "X-RateLimit-Remaining" not in headers and "RateLimit" not in headers
    assert headers["RateLimit-Policy"] == '"default";q=5;w=10'


@pytest.mark.parametrize(("on_error", "success"), [("allow", True), ("deny", False)])
@pytest.mark.parametrize("path", ["/fail", "/garbage", "/infinite"])
async def test_failing_redis_gives_reason_error(
    fault_url: str, path: str, on_error: str, success: bool
) -> None:
    """A Redis that answers 500 or nonsense decides by on_error, with reason "error"."""
    result = await limiter(fault_url + path, on_error).limit("id")
    assert (result.success, result.reason) == (success, "error")


async def test_refused_connection_gives_reason_error() -> None:
    """Nothing listening at all is an error too, not an exception."""
    result = await limiter("http://127.0.0.1:9", "deny").limit("id")
    assert (result.success, result.reason) == (False, "error")


async def test_default_timeout_suits_an_edge_request() -> None:
    """The default timeout is 1 s and fail-open, stated by the result's reason."""
    rl = Ratelimit(Redis("http://127.0.0.1:9", "t"), sliding_window(1, "1s"))
    assert (rl.timeout, rl.on_error) == (1.0, "allow")


async def test_failures_are_not_cached_as_blocks(fault_url: str) -> None:
    """A fail-closed denial is not remembered: the next call asks Redis again."""
    rl = Ratelimit(
        Redis(fault_url + "/fail", "t", retry=RetryPolicy.never()),
        token_bucket(1, "1s", 1),
        on_error="deny",
    )
    assert (await rl.limit("id")).reason == "error"
    assert (await rl.limit("id")).reason == "error"


@pytest.mark.parametrize(("on_error", "success"), [("allow", True), ("deny", False)])
async def test_unencodable_identifier_follows_on_error(
    rest: Redis[str], on_error: str, success: bool
) -> None:
    """An identifier the Redis call cannot encode (a lone surrogate) decides by on_error."""
    rl = Ratelimit(rest, fixed_window(5, "10s"), "p", on_error=on_error)  # type: ignore[arg-type]
    result = await rl.limit("user-\ud800")
    assert (result.success, result.reason, result.limit) == (success, "error", 5)


async def test_a_bad_caller_in_the_same_batch_does_not_fail_the_limiter(
    rest: Redis[str], prefix: str, ident: str
) -> None:
    """A concurrent caller's bad argument in the same auto-pipelined turn leaves the decision
    to Redis."""
    rl = Ratelimit(rest, sliding_window(5, "10s"), prefix, on_error="deny")

    async def bad_caller() -> object:
        return await rest.set(prefix + ":x", True)  # a bool is an int to mypy, not to Redis

    async with request_scope():
        result, bad = await asyncio.gather(rl.limit(ident), bad_caller(), return_exceptions=True)
    assert isinstance(bad, ValueError)
    assert isinstance(result, RateLimitResult)
    assert (result.success, result.reason, result.remaining) == (True, None, 4)


class FlushedScriptsTransport:
    """A Redis whose script cache was flushed and that then hangs: EVALSHA answers NOSCRIPT
    after a while, EVAL never answers. Records each request."""

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []
        self._never = asyncio.Event()

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if json.loads(request.body)[0] == "EVALSHA":
            await asyncio.sleep(0.1)  # a slow answer from the server, simulated
            body = json.dumps({"error": "NOSCRIPT No matching script"}).encode()
            return HttpResponse(400, {}, body)
        await self._never.wait()
        raise AssertionError("unreachable")


async def test_timeout_bounds_the_script_fallback_too() -> None:
    """A slow NOSCRIPT then a hanging EVAL still decide "timeout" within the limiter's
    timeout: the EVAL is sent with what the EVALSHA left of it, not a fresh timeout."""
    transport = FlushedScriptsTransport()
    redis = Redis("http://fake.local", "token", transport=transport, retry=RetryPolicy.never())
    rl = Ratelimit(redis, fixed_window(5, "10s"), "p", timeout="500ms", on_error="deny")
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await rl.limit("id")
    assert loop.time() - started < 1.0
    assert (result.success, result.reason) == (False, "timeout")
    evalsha, eval_ = transport.requests
    assert evalsha.timeout == 0.5
    assert eval_.timeout <= 0.41
