"""Client logic against a small in-memory fake transport (batching, retries, options)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

import pytest

from shared.errors import (
    ConfigError,
    RedisCommandError,
    TransportError,
    TransportTimeout,
)
from shared.http.transport import HttpRequest, HttpResponse
from shared.redis import Redis, RetryPolicy
from shared.scope import request_scope


class EchoTransport:
    """Echoes each command's name and first argument and records every request.

    FAIL gets a Redis error, SLOW hangs, and `fail_times` transport errors come first.
    """

    def __init__(self, fail_times: int = 0) -> None:
        self.requests: list[HttpRequest] = []
        self.fail_times = fail_times
        self.sync = 0

    @staticmethod
    def _answer(cmd: list[object]) -> dict[str, object]:
        if cmd[0] == "FAIL":
            return {"error": "ERR failed on purpose"}
        text = ":".join(str(c) for c in cmd[:2])
        return {"result": base64.b64encode(text.encode()).decode()}

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if self.fail_times:
            self.fail_times -= 1
            raise TransportError("connection reset")
        payload = json.loads(request.body)
        if any(isinstance(c, list) and c[0] == "SLOW" for c in payload) or payload[0] == "SLOW":
            await asyncio.sleep(10)
        self.sync += 1
        headers = {"upstash-sync-token": str(self.sync)}
        if request.url.endswith("/pipeline"):
            body = [self._answer(c) for c in payload]
            return HttpResponse(200, headers, json.dumps(body).encode())
        answer = self._answer(payload)
        return HttpResponse(400 if "error" in answer else 200, headers, json.dumps(answer).encode())


def client(transport: EchoTransport, **kw: object) -> Redis[str]:
    kw.setdefault("retry", RetryPolicy.never())
    return Redis("http://fake.local", "tok", transport=transport, **kw)  # type: ignore[arg-type]


async def test_concurrent_commands_share_one_request_in_order() -> None:
    """Commands gathered together leave as one /pipeline request; each gets its own result."""
    t = EchoTransport()
    r = client(t)
    async with request_scope():
        results = await asyncio.gather(*(r.execute(["ECHO", f"v{i}"]) for i in range(50)))
    assert results == [f"ECHO:v{i}" for i in range(50)]
    assert len(t.requests) == 1 and t.requests[0].url.endswith("/pipeline")
    assert [c[1] for c in json.loads(t.requests[0].body)] == [f"v{i}" for i in range(50)]


async def test_errors_stay_with_their_caller() -> None:
    """One failing command in a batch raises for its caller only."""
    t = EchoTransport()
    r = client(t)
    async with request_scope():
        ok1, bad, ok2 = await asyncio.gather(
            r.execute(["A", "1"]),
            r.execute(["FAIL"]),
            r.execute(["B", "2"]),
            return_exceptions=True,
        )
    assert ok1 == "A:1" and ok2 == "B:2"
    assert isinstance(bad, RedisCommandError) and bad.command == "FAIL"


async def test_pipeline_refuses_a_bad_argument_when_queued() -> None:
    """An explicit pipeline raises ValueError when a bad command is queued; the rest still run."""
    t = EchoTransport()
    pipe = client(t).pipeline()
    pipe.execute(["A", "1"])
    with pytest.raises(ValueError):
        pipe.execute(["B", b"\xff"])
    pipe.execute(["C", "3"])
    assert await pipe.exec() == ["A:1", "C:3"]


async def test_two_request_scopes_never_share_a_request() -> None:
    """Concurrent request scopes each send their own HTTP request."""
    t = EchoTransport()
    r = client(t)

    async def one_request(tag: str) -> list[str]:
        async with request_scope():
            return await asyncio.gather(r.execute(["X", tag + "1"]), r.execute(["X", tag + "2"]))

    a, b = await asyncio.gather(one_request("a"), one_request("b"))
    assert a == ["X:a1", "X:a2"] and b == ["X:b1", "X:b2"]
    assert len(t.requests) == 2
    bodies = [{c[1] for c in json.loads(req.body)} for req in t.requests]
    assert {"a1", "a2"} in bodies and {"b1", "b2"} in bodies


async def test_batch_size_is_capped() -> None:
    """A batch never exceeds max_batch commands."""
    t = EchoTransport()
    r = client(t, max_batch=10)
    async with request_scope():
        await asyncio.gather(*(r.execute(["X", i]) for i in range(25)))
    sizes = [
        len(json.loads(req.body)) if req.url.endswith("/pipeline") else 1 for req in t.requests
    ]
    assert max(sizes) <= 10 and sum(sizes) == 25


async def test_auto_pipeline_off_sends_each_command() -> None:
    """With auto_pipeline=False every command is its own request."""
    t = EchoTransport()
    r = client(t, auto_pipeline=False)
    await asyncio.gather(*(r.execute(["X", i]) for i in range(3)))
    assert len(t.requests) == 3 and not any(q.url.endswith("/pipeline") for q in t.requests)


async def test_timeout_is_per_call() -> None:
    """A hanging server raises TransportTimeout after the caller's timeout."""
    r = client(EchoTransport())
    with pytest.raises(TransportTimeout):
        await r.with_options(timeout=0.05).execute(["SLOW"])


async def test_reads_retry_writes_do_not() -> None:
    """Transport errors are retried for read-only commands only, unless opted in."""
    t = EchoTransport(fail_times=1)
    r = client(t, retry=RetryPolicy(attempts=3, base_delay=0))
    assert await r.get("k") == "GET:k"
    assert len(t.requests) == 2
    t2 = EchoTransport(fail_times=1)
    r2 = client(t2, retry=RetryPolicy(attempts=3, base_delay=0))
    with pytest.raises(TransportError):
        await r2.incr("k")
    assert len(t2.requests) == 1
    t3 = EchoTransport(fail_times=1)
    r3 = client(t3, retry=RetryPolicy(attempts=3, base_delay=0))
    assert await r3.with_options(retry_writes=True).execute(["INCR", "k"]) == "INCR:k"


async def test_newest_sync_token_is_sent() -> None:
    """The newest upstash-sync-token goes out with the next request and can be handed over."""
    t = EchoTransport()
    r = client(t)
    await r.get("a")
    await r.get("b")
    assert t.requests[1].headers["upstash-sync-token"] == "1"
    other = client(t)
    other.sync_token = r.sync_token
    await other.get("c")
    assert t.requests[2].headers["upstash-sync-token"] == "2"


def test_from_env_names_the_variable_never_the_token() -> None:
    """Missing or malformed settings raise ConfigError naming the variable only."""
    with pytest.raises(ConfigError, match="UPSTASH_REDIS_REST_URL"):
        Redis.from_env({})
    with pytest.raises(ConfigError, match="UPSTASH_REDIS_REST_TOKEN"):
        Redis.from_env({"UPSTASH_REDIS_REST_URL": "https://x.upstash.io"})
    with pytest.raises(ConfigError) as info:
        Redis.from_env({"UPSTASH_REDIS_REST_URL": "ftp://x", "UPSTASH_REDIS_REST_TOKEN": "s3cret"})
    assert "s3cret" not in str(info.value)
    with pytest.raises(ConfigError, match="TOKEN"):
        Redis.from_env({"KV_REST_API_URL": "https://x", "KV_REST_API_TOKEN": "a b"})
    r = Redis.from_env(
        {"KV_REST_API_URL": "https://kv.example/", "KV_REST_API_TOKEN": "tok-XYZ"},
        transport=EchoTransport(),
    )
    assert r.url == "https://kv.example" and "tok-XYZ" not in repr(r)


async def test_over_a_fetch_transport_a_hanging_call_still_times_out() -> None:
    """Over FetchTransport (which bounds the whole exchange itself, so the client arms no
    second timer) a call that never answers raises TransportTimeout at the client's timeout."""
    from shared.errors import TransportTimeout
    from shared.http import FetchTransport

    never = asyncio.Event()

    async def hanging_fetch(url: str, **kwargs: object) -> object:
        await never.wait()
        raise AssertionError("unreachable")

    redis = Redis(
        "http://fake.local",
        "tok",
        transport=FetchTransport(hanging_fetch),
        timeout=0.2,
        retry=RetryPolicy.never(),
    )
    started = asyncio.get_running_loop().time()
    with pytest.raises(TransportTimeout):
        await redis.get("k")
    assert asyncio.get_running_loop().time() - started < 2.0


async def test_total_timeout_bounds_the_retries_too() -> None:
    """With total_timeout, retries stop at the call's timeout with TransportTimeout, where
    per-attempt timeouts would go on retrying a failing transport until the attempts end."""
    t = EchoTransport(fail_times=1000)
    policy = RetryPolicy(attempts=200, base_delay=0.02, max_delay=0.02)
    r = client(t, retry=policy).with_options(timeout=0.2, total_timeout=True)
    with pytest.raises(TransportTimeout):
        await r.get("k")
    assert 1 < len(t.requests) < 200
    assert all(q.timeout <= 0.2 for q in t.requests)


async def test_total_timeout_gives_a_retry_what_is_left() -> None:
    """A retry under total_timeout is sent with the rest of the deadline, not a fresh one."""
    t = EchoTransport(fail_times=1)
    r = client(t, retry=RetryPolicy(attempts=3, base_delay=0.02, max_delay=0.02))
    assert await r.with_options(timeout=1.0, total_timeout=True).get("k") == "GET:k"
    assert t.requests[0].timeout == 1.0
    assert 0 < t.requests[1].timeout < 1.0
    plain = EchoTransport(fail_times=1)
    r2 = client(plain, retry=RetryPolicy(attempts=3, base_delay=0.02, max_delay=0.02))
    assert await r2.with_options(timeout=1.0).get("k") == "GET:k"
    assert plain.requests[1].timeout == 1.0  # per attempt without total_timeout


class NoScriptTransport(EchoTransport):
    """Answers EVALSHA slowly with NOSCRIPT (the script cache was flushed), EVAL at once."""

    async def send(self, request: HttpRequest) -> HttpResponse:
        if json.loads(request.body)[0] == "EVALSHA":
            self.requests.append(request)
            await asyncio.sleep(0.05)  # a slow answer from the server, simulated
            body = json.dumps({"error": "NOSCRIPT No matching script"}).encode()
            return HttpResponse(400, {}, body)
        return await super().send(request)


async def test_a_script_fallback_shares_the_total_timeout() -> None:
    """Under total_timeout the EVAL after a NOSCRIPT gets what the EVALSHA left of the
    deadline (the call as a whole stays bounded); without it, a fresh timeout."""
    from shared.redis import Script

    script = Script("return 1")
    t = NoScriptTransport()
    assert (
        await script.run(client(t).with_options(timeout=1.0, total_timeout=True)) == "EVAL:return 1"
    )
    evalsha, eval_ = t.requests
    assert evalsha.timeout == 1.0 and eval_.timeout <= 0.96
    plain = NoScriptTransport()
    assert await script.run(client(plain).with_options(timeout=1.0)) == "EVAL:return 1"
    assert plain.requests[1].timeout == 1.0


async def test_a_total_timeout_command_batched_with_retried_ones_still_ends_in_time() -> None:
    """Batched with a command whose caller allows retries past the deadline, a command under
    total_timeout gives up at its own timeout (TransportTimeout); the other keeps retrying."""
    t = EchoTransport(fail_times=1000)
    r = client(t, retry=RetryPolicy(attempts=60, base_delay=0.02, max_delay=0.02))
    plain = r.with_options(timeout=0.2)
    whole = r.with_options(timeout=0.2, total_timeout=True)
    async with request_scope():
        results = await asyncio.gather(whole.get("a"), plain.get("b"), return_exceptions=True)
    assert isinstance(results[0], TransportTimeout)
    assert isinstance(results[1], TransportError) and not isinstance(results[1], TransportTimeout)
    assert len(t.requests) == 60


class GatedTransport(EchoTransport):
    """Holds every request until `gate` is set; `sent` tells that one is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = asyncio.Event()
        self.gate = asyncio.Event()

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.set()
        await self.gate.wait()
        return await super().send(request)


async def test_a_cancelled_leader_does_not_take_the_others_request_down() -> None:
    """Cancelling the caller whose command opened a batch, while the batch's request is in
    flight, leaves the other caller's result intact (the request is not cancelled)."""
    t = GatedTransport()
    r = client(t)
    async with request_scope():
        leader = asyncio.ensure_future(r.get("a"))
        other = asyncio.ensure_future(r.get("b"))
        await asyncio.wait_for(t.sent.wait(), 5)
        leader.cancel()
        t.gate.set()
        assert await asyncio.wait_for(other, 5) == "GET:b"
        with pytest.raises(asyncio.CancelledError):
            await leader
    assert len(t.requests) == 1 and t.requests[0].url.endswith("/pipeline")


async def test_optional_arguments_go_on_the_wire_in_order() -> None:
    """SET's EX/PX and flags, SCAN's MATCH/COUNT/TYPE and ZRANGE's BYSCORE/REV/WITHSCORES are
    encoded where Redis expects them, and only when given."""
    t = EchoTransport()
    pipe = client(t).pipeline()
    pipe.set("k", "v", ex=5)
    pipe.set("k", "v", px=7, nx=True, get=True)
    pipe.scan(3, match="a*", count=10, type="hash")
    pipe.scan()
    pipe.zrange("z", 0, 5, byscore=True, rev=True)
    pipe.zrange_withscores("z", 0, -1, rev=True)
    with contextlib.suppress(Exception):  # the echoed replies do not parse; the request counts
        await pipe.exec()
    assert json.loads(t.requests[0].body) == [
        ["SET", "k", "v", "EX", 5],
        ["SET", "k", "v", "PX", 7, "NX", "GET"],
        ["SCAN", 3, "MATCH", "a*", "COUNT", 10, "TYPE", "hash"],
        ["SCAN", 0],
        ["ZRANGE", "z", 0, 5, "BYSCORE", "REV"],
        ["ZRANGE", "z", 0, -1, "REV", "WITHSCORES"],
    ]
