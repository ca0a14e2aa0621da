"""Inside Pyodide: the Redis REST client over FetchTransport(pyfetch) against the devstack
(ENV: REDIS_URL, REDIS_TOKEN, PREFIX). Proves the core needs no TCP and no native code."""

import asyncio

from pyodide.http import pyfetch
from pyodide_checks import Checks

from shared.errors import RedisCommandError, TransportError
from shared.http import FetchTransport
from shared.redis import Redis, RetryPolicy, Script
from shared.scope import request_scope

ENV: dict[str, str] = globals()["ENV"]
P = ENV["PREFIX"]
checks = Checks()
redis = Redis(
    ENV["REDIS_URL"],
    ENV["REDIS_TOKEN"],
    transport=FetchTransport(pyfetch),
    retry=RetryPolicy.never(),
)


@checks.case
async def strings_and_counters() -> None:
    assert await redis.set(P + "s", "héllo", ex=60) is True
    assert await redis.get(P + "s") == "héllo"
    assert await redis.incrby(P + "n", 3) == 3
    assert await redis.ping() == "PONG"


@checks.case
async def collections() -> None:
    await redis.hset(P + "h", {"a": "1"})
    assert await redis.hgetall(P + "h") == {"a": "1"}
    await redis.zadd(P + "z", {"m": 2.5})
    assert await redis.zrange_withscores(P + "z", 0, -1) == [("m", 2.5)]


@checks.case
async def auto_pipelining_in_a_scope() -> None:
    async with request_scope():
        results = await asyncio.gather(*(redis.incr(P + "ap") for _ in range(20)))
    assert sorted(results) == list(range(1, 21))
    assert results == list(range(1, 21)), "replies must come back in issue order"


@checks.case
async def pipeline_and_transaction() -> None:
    tx = redis.multi()
    tx.set(P + "t", "1")
    tx.incr(P + "t")
    assert await tx.exec() == [True, 2]
    pipe = redis.pipeline()
    pipe.set(P + "w", "x")
    pipe.lpush(P + "w", "y")
    ok, err = await pipe.exec()
    assert ok is True and isinstance(err, RedisCommandError) and err.code == "WRONGTYPE"


@checks.case
async def script_helper() -> None:
    script = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert await script.run(redis, [P + "sc"], [5]) == 5
    assert await script.run(redis, [P + "sc"], [5]) == 10


@checks.case
async def binary_values() -> None:
    raw = Redis(
        ENV["REDIS_URL"],
        ENV["REDIS_TOKEN"],
        transport=FetchTransport(pyfetch),
        decode_responses=False,
    )
    await raw.set(P + "b", "x\u00ff")
    assert await raw.get(P + "b") == "x\u00ff".encode()


@checks.case
async def unreachable_server_is_a_transport_error() -> None:
    dead = Redis(
        ENV["REFUSED_URL"],
        "t",
        transport=FetchTransport(pyfetch),
        retry=RetryPolicy.never(),
        timeout=3,
    )
    try:
        await dead.get("k")
    except TransportError:
        return
    raise AssertionError("expected TransportError")


await checks.run()  # noqa: F704
