"""Typed command methods, written once for the client, pipelines and transactions.

Each method builds a `Command` and hands it to `_run`: the client sends it (or
auto-pipelines it) and returns a coroutine; a `Pipeline` queues it and returns a
future that resolves when the pipeline executes. `V` is `str` by default and
`bytes` with `decode_responses=False`.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar, overload

from shared.redis import parsers as p
from shared.redis.command import Command, Parser, build
from shared.redis.protocol import Arg

V = TypeVar("V", str, bytes)
T = TypeVar("T")


def _flag(args: list[Arg], on: bool, name: str) -> None:
    if on:
        args.append(name)


def _option(args: list[Arg], name: str, value: Arg | None) -> None:
    if value is not None:
        args += [name, value]


def _zrange(key: str, start: int | str, stop: int | str, byscore: bool, rev: bool) -> list[Arg]:
    args: list[Arg] = ["ZRANGE", key, start, stop]
    _flag(args, byscore, "BYSCORE")
    _flag(args, rev, "REV")
    return args


class CommandMethods(ABC, Generic[V]):
    @abstractmethod
    def _run(self, command: Command[T]) -> Awaitable[T]: ...

    def _cmd(
        self, args: Sequence[Arg], parse: Parser[Any], *, read_only: bool = False
    ) -> Awaitable[Any]:
        return self._run(build(args, parse, read_only=read_only))

    # -- raw -----------------------------------------------------------------------------

    def execute(self, args: Sequence[Arg]) -> Awaitable[Any]:
        """Any command as a list, `["SET", "k", "v"]`; the reply decoded recursively."""
        return self._cmd(list(args), p.tree)

    # -- server --------------------------------------------------------------------------

    def ping(self) -> Awaitable[str]:
        return self._cmd(["PING"], p.pong, read_only=True)

    def echo(self, message: str) -> Awaitable[V]:
        return self._cmd(["ECHO", message], p.value, read_only=True)

    def time(self) -> Awaitable[tuple[int, int]]:
        """The server clock as (seconds, microseconds)."""
        return self._cmd(["TIME"], p.time_pair, read_only=True)

    def dbsize(self) -> Awaitable[int]:
        return self._cmd(["DBSIZE"], p.integer, read_only=True)

    def publish(self, channel: str, message: Arg) -> Awaitable[int]:
        return self._cmd(["PUBLISH", channel, message], p.integer)

    # -- strings -------------------------------------------------------------------------

    def get(self, key: str) -> Awaitable[V | None]:
        return self._cmd(["GET", key], p.value, read_only=True)

    @overload
    def set(
        self,
        key: str,
        value: Arg,
        *,
        ex: int | None = ...,
        px: int | None = ...,
        nx: bool = ...,
        xx: bool = ...,
        keepttl: bool = ...,
        get: Literal[False] = ...,
    ) -> Awaitable[bool]: ...
    @overload
    def set(
        self,
        key: str,
        value: Arg,
        *,
        ex: int | None = ...,
        px: int | None = ...,
        nx: bool = ...,
        xx: bool = ...,
        keepttl: bool = ...,
        get: Literal[True],
    ) -> Awaitable[V | None]: ...
    def set(
        self,
        key: str,
        value: Arg,
        *,
        ex: int | None = None,
        px: int | None = None,
        nx: bool = False,
        xx: bool = False,
        keepttl: bool = False,
        get: bool = False,
    ) -> Awaitable[Any]:
        """SET; returns whether it was written (False when NX/XX prevented it), or with
        `get=True` the previous value."""
        if ex is not None and px is not None:
            raise ValueError("set: pass ex or px, not both")
        if nx and xx:
            raise ValueError("set: nx and xx exclude each other")
        args: list[Arg] = ["SET", key, value]
        _option(args, "EX", ex)
        _option(args, "PX", px)
        _flag(args, nx, "NX")
        _flag(args, xx, "XX")
        _flag(args, keepttl, "KEEPTTL")
        _flag(args, get, "GET")
        return self._cmd(args, p.value if get else p.ok)

    def setex(self, key: str, seconds: int, value: Arg) -> Awaitable[bool]:
        return self._cmd(["SETEX", key, seconds, value], p.ok)

    def getdel(self, key: str) -> Awaitable[V | None]:
        return self._cmd(["GETDEL", key], p.value)

    def mget(self, *keys: str) -> Awaitable[list[V | None]]:
        return self._cmd(["MGET", *keys], p.values, read_only=True)

    def mset(self, mapping: Mapping[str, Arg]) -> Awaitable[bool]:
        args: list[Arg] = ["MSET"]
        for k, v in mapping.items():
            args += [k, v]
        return self._cmd(args, p.ok)

    def incr(self, key: str) -> Awaitable[int]:
        return self._cmd(["INCR", key], p.integer)

    def incrby(self, key: str, amount: int) -> Awaitable[int]:
        return self._cmd(["INCRBY", key, amount], p.integer)

    def incrbyfloat(self, key: str, amount: float) -> Awaitable[float]:
        return self._cmd(["INCRBYFLOAT", key, amount], p.number)

    def decr(self, key: str) -> Awaitable[int]:
        return self._cmd(["DECR", key], p.integer)

    def decrby(self, key: str, amount: int) -> Awaitable[int]:
        return self._cmd(["DECRBY", key, amount], p.integer)

    def append(self, key: str, value: Arg) -> Awaitable[int]:
        return self._cmd(["APPEND", key, value], p.integer)

    def strlen(self, key: str) -> Awaitable[int]:
        return self._cmd(["STRLEN", key], p.integer, read_only=True)

    # -- keys ----------------------------------------------------------------------------

    def delete(self, *keys: str) -> Awaitable[int]:
        """DEL: how many of the keys existed."""
        return self._cmd(["DEL", *keys], p.integer)

    def unlink(self, *keys: str) -> Awaitable[int]:
        return self._cmd(["UNLINK", *keys], p.integer)

    def exists(self, *keys: str) -> Awaitable[int]:
        return self._cmd(["EXISTS", *keys], p.integer, read_only=True)

    def expire(self, key: str, seconds: int, *, nx: bool = False) -> Awaitable[bool]:
        args: list[Arg] = ["EXPIRE", key, seconds]
        _flag(args, nx, "NX")
        return self._cmd(args, p.boolean)

    def pexpire(self, key: str, milliseconds: int, *, nx: bool = False) -> Awaitable[bool]:
        args: list[Arg] = ["PEXPIRE", key, milliseconds]
        _flag(args, nx, "NX")
        return self._cmd(args, p.boolean)

    def persist(self, key: str) -> Awaitable[bool]:
        return self._cmd(["PERSIST", key], p.boolean)

    def ttl(self, key: str) -> Awaitable[int]:
        """Seconds left; -1 without expiry, -2 when the key does not exist."""
        return self._cmd(["TTL", key], p.integer, read_only=True)

    def pttl(self, key: str) -> Awaitable[int]:
        return self._cmd(["PTTL", key], p.integer, read_only=True)

    def type(self, key: str) -> Awaitable[str]:
        return self._cmd(["TYPE", key], p.type_name, read_only=True)

    def scan(
        self,
        cursor: int = 0,
        *,
        match: str | None = None,
        count: int | None = None,
        type: str | None = None,
    ) -> Awaitable[tuple[int, list[V]]]:
        args: list[Arg] = ["SCAN", cursor]
        _option(args, "MATCH", match)
        _option(args, "COUNT", count)
        _option(args, "TYPE", type)
        return self._cmd(args, p.scan_page, read_only=True)

    # -- hashes --------------------------------------------------------------------------

    def hset(self, key: str, mapping: Mapping[str, Arg]) -> Awaitable[int]:
        if not mapping:
            raise ValueError("hset: mapping is empty")
        args: list[Arg] = ["HSET", key]
        for f, v in mapping.items():
            args += [f, v]
        return self._cmd(args, p.integer)

    def hsetnx(self, key: str, field: str, value: Arg) -> Awaitable[bool]:
        return self._cmd(["HSETNX", key, field, value], p.boolean)

    def hget(self, key: str, field: str) -> Awaitable[V | None]:
        return self._cmd(["HGET", key, field], p.value, read_only=True)

    def hmget(self, key: str, *fields: str) -> Awaitable[list[V | None]]:
        return self._cmd(["HMGET", key, *fields], p.values, read_only=True)

    def hgetall(self, key: str) -> Awaitable[dict[V, V]]:
        return self._cmd(["HGETALL", key], p.pairs_dict, read_only=True)

    def hdel(self, key: str, *fields: str) -> Awaitable[int]:
        return self._cmd(["HDEL", key, *fields], p.integer)

    def hexists(self, key: str, field: str) -> Awaitable[bool]:
        return self._cmd(["HEXISTS", key, field], p.boolean, read_only=True)

    def hincrby(self, key: str, field: str, amount: int = 1) -> Awaitable[int]:
        return self._cmd(["HINCRBY", key, field, amount], p.integer)

    def hkeys(self, key: str) -> Awaitable[list[V]]:
        return self._cmd(["HKEYS", key], p.values, read_only=True)

    def hvals(self, key: str) -> Awaitable[list[V]]:
        return self._cmd(["HVALS", key], p.values, read_only=True)

    def hlen(self, key: str) -> Awaitable[int]:
        return self._cmd(["HLEN", key], p.integer, read_only=True)

    # -- lists ---------------------------------------------------------------------------

    def lpush(self, key: str, *values: Arg) -> Awaitable[int]:
        return self._cmd(["LPUSH", key, *values], p.integer)

    def rpush(self, key: str, *values: Arg) -> Awaitable[int]:
        return self._cmd(["RPUSH", key, *values], p.integer)

    def lpop(self, key: str) -> Awaitable[V | None]:
        return self._cmd(["LPOP", key], p.value)

    def rpop(self, key: str) -> Awaitable[V | None]:
        return self._cmd(["RPOP", key], p.value)

    def lrange(self, key: str, start: int, stop: int) -> Awaitable[list[V]]:
        return self._cmd(["LRANGE", key, start, stop], p.values, read_only=True)

    def llen(self, key: str) -> Awaitable[int]:
        return self._cmd(["LLEN", key], p.integer, read_only=True)

    def lrem(self, key: str, count: int, value: Arg) -> Awaitable[int]:
        return self._cmd(["LREM", key, count, value], p.integer)

    def ltrim(self, key: str, start: int, stop: int) -> Awaitable[bool]:
        return self._cmd(["LTRIM", key, start, stop], p.ok)

    def lindex(self, key: str, index: int) -> Awaitable[V | None]:
        return self._cmd(["LINDEX", key, index], p.value, read_only=True)

    # -- sets ----------------------------------------------------------------------------

    def sadd(self, key: str, *members: Arg) -> Awaitable[int]:
        return self._cmd(["SADD", key, *members], p.integer)

    def srem(self, key: str, *members: Arg) -> Awaitable[int]:
        return self._cmd(["SREM", key, *members], p.integer)

    def smembers(self, key: str) -> Awaitable[builtins.set[V]]:
        return self._cmd(["SMEMBERS", key], p.value_set, read_only=True)

    def sismember(self, key: str, member: Arg) -> Awaitable[bool]:
        return self._cmd(["SISMEMBER", key, member], p.boolean, read_only=True)

    def scard(self, key: str) -> Awaitable[int]:
        return self._cmd(["SCARD", key], p.integer, read_only=True)

    # -- sorted sets ---------------------------------------------------------------------

    def zadd(
        self,
        key: str,
        mapping: Mapping[str, float],
        *,
        nx: bool = False,
        xx: bool = False,
        gt: bool = False,
        lt: bool = False,
        ch: bool = False,
    ) -> Awaitable[int]:
        if not mapping:
            raise ValueError("zadd: mapping is empty")
        args: list[Arg] = ["ZADD", key]
        for flag, name in ((nx, "NX"), (xx, "XX"), (gt, "GT"), (lt, "LT"), (ch, "CH")):
            _flag(args, flag, name)
        for member, score in mapping.items():
            args += [score, member]
        return self._cmd(args, p.integer)

    def zincrby(self, key: str, amount: float, member: str) -> Awaitable[float]:
        return self._cmd(["ZINCRBY", key, amount, member], p.number)

    def zscore(self, key: str, member: str) -> Awaitable[float | None]:
        return self._cmd(["ZSCORE", key, member], p.optional_number, read_only=True)

    def zrank(self, key: str, member: str) -> Awaitable[int | None]:
        return self._cmd(["ZRANK", key, member], p.optional_int, read_only=True)

    def zrem(self, key: str, *members: str) -> Awaitable[int]:
        return self._cmd(["ZREM", key, *members], p.integer)

    def zcard(self, key: str) -> Awaitable[int]:
        return self._cmd(["ZCARD", key], p.integer, read_only=True)

    def zcount(self, key: str, min: float | str, max: float | str) -> Awaitable[int]:
        return self._cmd(["ZCOUNT", key, min, max], p.integer, read_only=True)

    def zrange(
        self,
        key: str,
        start: int | str,
        stop: int | str,
        *,
        byscore: bool = False,
        rev: bool = False,
    ) -> Awaitable[list[V]]:
        return self._cmd(_zrange(key, start, stop, byscore, rev), p.values, read_only=True)

    def zrange_withscores(
        self,
        key: str,
        start: int | str,
        stop: int | str,
        *,
        byscore: bool = False,
        rev: bool = False,
    ) -> Awaitable[list[tuple[V, float]]]:
        args = [*_zrange(key, start, stop, byscore, rev), "WITHSCORES"]
        return self._cmd(args, p.scored, read_only=True)

    def zremrangebyscore(self, key: str, min: float | str, max: float | str) -> Awaitable[int]:
        return self._cmd(["ZREMRANGEBYSCORE", key, min, max], p.integer)

    # -- scripts -------------------------------------------------------------------------

    def eval(
        self, script: str, keys: Sequence[str] = (), args: Sequence[Arg] = ()
    ) -> Awaitable[Any]:
        return self._cmd(["EVAL", script, len(keys), *keys, *args], p.tree)

    def evalsha(
        self, sha: str, keys: Sequence[str] = (), args: Sequence[Arg] = ()
    ) -> Awaitable[Any]:
        return self._cmd(["EVALSHA", sha, len(keys), *keys, *args], p.tree)

    def script_load(self, script: str) -> Awaitable[str]:
        return self._cmd(["SCRIPT", "LOAD", script], p.text)
