"""The Redis client against the real devstack (REST server on a real Valkey)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis_py

from shared.errors import (
    RedisAuthError,
    RedisCommandError,
    RedisDecodeError,
    RedisTransactionAborted,
)
from shared.redis import Redis, RetryPolicy, Script, delete_if_equals
from shared.scope import request_scope
from tests.conftest import Devstack
from tests.redis_client.conftest import ServerStats


async def test_strings_roundtrip(redis: Redis[str], key: str) -> None:
    """SET/GET with options, MGET/MSET, counters and expiries behave like Redis."""
    assert await redis.set(key + "a", "hello", ex=100) is True
    assert await redis.get(key + "a") == "hello"
    assert await redis.set(key + "a", "other", nx=True) is False
    assert await redis.set(key + "a", "new", get=True, keepttl=True) == "hello"
    assert await redis.get(key + "missing") is None
    assert await redis.mset({key + "m1": "1", key + "m2": "é"}) is True
    assert await redis.mget(key + "m1", key + "m2", key + "nope") == ["1", "é", None]
    assert await redis.incr(key + "n") == 1
    assert await redis.incrby(key + "n", 5) == 6
    assert await redis.decr(key + "n") == 5
    assert await redis.incrbyfloat(key + "f", 1.5) == 1.5
    assert 0 < await redis.ttl(key + "a") <= 100
    assert await redis.pexpire(key + "n", 50_000) is True
    assert 0 < await redis.pttl(key + "n") <= 50_000
    assert await redis.ttl(key + "missing") == -2
    assert await redis.exists(key + "a", key + "n", key + "missing") == 2
    assert await redis.delete(key + "a", key + "n") == 2
    assert await redis.type(key + "m1") == "string"


async def test_falsy_and_ok_like_values(redis: Redis[str], key: str) -> None:
    """Values that look like status replies or are empty round-trip unchanged."""
    for value in ["", "0", "OK", "PONG", "null", "123"]:
        await redis.set(key + "v", value)
        assert await redis.get(key + "v") == value


async def test_hashes_lists_sets_zsets(redis: Redis[str], key: str) -> None:
    """The collection commands return typed Python values."""
    assert await redis.hset(key + "h", {"a": "1", "b": "2"}) == 2
    assert await redis.hgetall(key + "h") == {"a": "1", "b": "2"}
    assert await redis.hget(key + "h", "a") == "1"
    assert await redis.hmget(key + "h", "a", "zz") == ["1", None]
    assert await redis.hincrby(key + "h", "a", 2) == 3
    assert await redis.hdel(key + "h", "b") == 1
    assert await redis.rpush(key + "l", "x", "y") == 2
    assert await redis.lpush(key + "l", "w") == 3
    assert await redis.lrange(key + "l", 0, -1) == ["w", "x", "y"]
    assert await redis.lpop(key + "l") == "w"
    assert await redis.sadd(key + "s", "a", "b", "a") == 2
    assert await redis.smembers(key + "s") == {"a", "b"}
    assert await redis.sismember(key + "s", "b") is True
    assert await redis.zadd(key + "z", {"a": 1, "b": 2.5}) == 2
    assert await redis.zincrby(key + "z", 1, "a") == 2.0
    assert await redis.zscore(key + "z", "b") == 2.5
    assert await redis.zrange(key + "z", 0, -1) == ["a", "b"]
    assert await redis.zrange_withscores(key + "z", 0, -1) == [("a", 2.0), ("b", 2.5)]
    assert await redis.zcard(key + "z") == 2


async def test_server_commands(redis: Redis[str]) -> None:
    """PING, TIME and ECHO decode their replies."""
    assert await redis.ping() == "PONG"
    seconds, micros = await redis.time()
    assert seconds > 1_700_000_000 and 0 <= micros < 1_000_000
    assert await redis.echo("hi") == "hi"
    assert await redis.publish("chan", "msg") == 0


async def test_scan_iter_sees_every_key(redis: Redis[str], key: str) -> None:
    """scan_iter walks the cursor until it returns to 0."""
    await redis.mset({f"{key}scan:{i}": str(i) for i in range(120)})
    found = [k async for k in redis.scan_iter(match=f"{key}scan:*", count=20)]
    assert set(found) == {f"{key}scan:{i}" for i in range(120)}


async def test_binary_values_with_decode_off(devstack: Devstack, key: str) -> None:
    """decode_responses=False returns bytes; the default refuses non-UTF-8 with a clear error."""
    direct = redis_py.from_url(devstack.redis_url)
    await direct.set(key + "bin", b"\x00\xff\xfe")
    await direct.aclose()
    raw = Redis(devstack.redis_rest_url, devstack.redis_rest_token, decode_responses=False)
    assert await raw.get(key + "bin") == b"\x00\xff\xfe"
    text = Redis(devstack.redis_rest_url, devstack.redis_rest_token)
    with pytest.raises(RedisDecodeError, match="GET"):
        await text.get(key + "bin")


async def test_command_errors_are_typed(redis: Redis[str], key: str) -> None:
    """A Redis error becomes RedisCommandError with the parsed code and no values."""
    await redis.set(key + "s", "x")
    with pytest.raises(RedisCommandError) as info:
        await redis.lpush(key + "s", "secret-value")
    assert info.value.code == "WRONGTYPE" and "secret-value" not in str(info.value)


async def test_wrong_token_and_read_only_token(devstack: Devstack, key: str) -> None:
    """A wrong token is RedisAuthError; the read-only token reads but cannot write."""
    bad = Redis(devstack.redis_rest_url, "wrong-token", retry=RetryPolicy.never())
    with pytest.raises(RedisAuthError) as info:
        await bad.get(key)
    assert "wrong-token" not in str(info.value)
    ro = Redis(devstack.redis_rest_url, devstack.redis_rest_readonly_token)
    assert await ro.get(key + "nothing") is None
    with pytest.raises((RedisAuthError, RedisCommandError)):
        await ro.set(key + "x", "1")


async def test_pipeline_keeps_errors_in_place(redis: Redis[str], key: str) -> None:
    """A pipeline returns each result in order, a failed command's error in its slot."""
    await redis.set(key + "str", "x")
    pipe = redis.pipeline()
    first = pipe.set(key + "a", "1")
    pipe.lpush(key + "str", "boom")
    got = pipe.get(key + "a")
    results = await pipe.exec()
    assert results[0] is True and isinstance(results[1], RedisCommandError) and results[2] == "1"
    assert await first is True and await got == "1"
    assert await redis.pipeline().exec() == []


async def test_multi_runs_atomically_and_reports_discard(redis: Redis[str], key: str) -> None:
    """A transaction returns per-item results; one discarded as a whole raises."""
    tx = redis.multi()
    tx.incr(key + "c")
    tx.incr(key + "c")
    tx.expire(key + "c", 60)
    assert await tx.exec() == [1, 2, True]
    tx = redis.multi()
    tx.set(key + "d", "1")
    tx.execute(["NOSUCHCOMMAND", "x"])
    with pytest.raises(RedisTransactionAborted):
        await tx.exec()
    assert await redis.get(key + "d") is None


async def test_script_falls_back_to_eval_on_noscript(
    devstack: Devstack, redis: Redis[str], key: str
) -> None:
    """Script runs EVALSHA, and after a SCRIPT FLUSH re-sends the source once."""
    script = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    direct = redis_py.from_url(devstack.redis_url)
    await direct.script_flush()
    assert await script.run(redis, [key + "k"], [2]) == 2  # NOSCRIPT -> EVAL
    assert await script.run(redis, [key + "k"], [3]) == 5  # EVALSHA
    await direct.aclose()


async def test_allow_key_locking_script_via_sha(redis: Redis[str], key: str) -> None:
    """A script with Upstash's allow-key-locking shebang runs and is then found by its SHA."""
    script = Script("#!lua flags=allow-key-locking\nreturn redis.call('SET', KEYS[1], ARGV[1])")
    assert await script.run(redis, [key + "lk"], ["v"]) == "OK"
    assert await redis.evalsha(script.sha, [key + "lk"], ["w"]) == "OK"
    assert await redis.get(key + "lk") == "w"


async def test_auto_pipelining_one_http_request(
    redis: Redis[str], key: str, stats: ServerStats
) -> None:
    """100 commands awaited together reach the server as one HTTP request, in order."""
    await redis.set(key + "x", "0")
    before = await stats.http_requests()
    async with request_scope():
        results = await asyncio.gather(
            *(redis.incr(key + "x") for _ in range(100)), redis.get(key + "x")
        )
    after = await stats.http_requests()
    assert results == [*range(1, 101), "100"]
    assert after - before == 1  # the stats endpoint does not count itself


async def test_concurrent_request_scopes_do_not_share(
    redis: Redis[str], key: str, stats: ServerStats
) -> None:
    """Two concurrent request scopes send separate HTTP requests."""
    before = await stats.http_requests()

    async def one(tag: str) -> list[str | None]:
        async with request_scope():
            return list(await asyncio.gather(redis.get(key + tag), redis.get(key + tag + "2")))

    await asyncio.gather(one("a"), one("b"))
    assert await stats.http_requests() - before == 2


async def test_sync_token_moves_forward(redis: Redis[str], key: str) -> None:
    """Every reply carries a sync token that the client keeps and sends back."""
    await redis.set(key, "1")
    first = redis.sync_token
    await redis.set(key, "2")
    assert first is not None and redis.sync_token is not None
    assert int(redis.sync_token) > int(first)  # the devstack's token is a counter


@pytest.mark.parametrize(
    "bad",
    [True, b"\xff\xfe", "\ud800", None, {"a": 1}],
    ids=["bool", "non-utf8-bytes", "lone-surrogate", "none", "dict"],
)
async def test_bad_argument_fails_only_its_caller(
    redis: Redis[str], key: str, stats: ServerStats, bad: object
) -> None:
    """A caller whose argument cannot be encoded gets a ValueError; its turn's others succeed."""
    await redis.set(key + "g", "kept")
    before = await stats.http_requests()

    async def good_set() -> bool:
        return await redis.set(key + "a", "1")

    async def bad_set() -> object:
        return await redis.execute(["SET", key + "b", bad])  # type: ignore[list-item]

    async def good_get() -> str | None:
        return await redis.get(key + "g")

    async def good_incr() -> int:
        return await redis.incr(key + "n")

    async with request_scope():
        results = await asyncio.gather(
            good_set(), bad_set(), good_get(), good_incr(), return_exceptions=True
        )
    assert results[0] is True
    assert isinstance(results[1], ValueError)
    assert list(results[2:]) == ["kept", 1]
    assert await stats.http_requests() - before == 1  # the good ones still shared one request
    assert await redis.exists(key + "b") == 0


async def test_delete_if_equals_releases_only_its_own_lock(redis: Redis[str], key: str) -> None:
    """A lock is deleted by the token that holds it, never by another (e.g. an expired holder)."""
    await redis.set(key + "lock", "mine", px=10_000)
    assert await delete_if_equals(redis, key + "lock", "someone-else") is False
    assert await redis.get(key + "lock") == "mine"
    assert await delete_if_equals(redis, key + "lock", "mine") is True
    assert await redis.exists(key + "lock") == 0
    assert await delete_if_equals(redis, key + "lock", "mine") is False
