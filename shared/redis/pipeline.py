"""Explicit pipelines (`/pipeline`, not atomic) and transactions (`/multi-exec`).

    pipe = redis.multi()
    count = pipe.incr("visits")      # a handle, resolved by exec()
    pipe.expire("visits", 60)
    results = await pipe.exec()      # [1, True]; a failed command's slot holds its error
    print(await count)               # 1

A failing command keeps its place (its `RedisCommandError` in the list, and its
handle raises it); a transaction discarded as a whole raises
`RedisTransactionAborted` because nothing in it ran.
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator
from typing import Any, Generic, TypeVar

from shared.errors import RedisDecodeError, RedisError
from shared.redis.command import Command
from shared.redis.commands import CommandMethods, V
from shared.redis.exchange import CallOptions, Exchange

T = TypeVar("T")


class Handle(Generic[T]):
    """One queued command's result, available once the pipeline has run."""

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None

    def _settle(self, value: Any = None, error: BaseException | None = None) -> None:
        self._done, self._value, self._error = True, value, error

    async def _get(self) -> T:
        if not self._done:
            raise RuntimeError("this pipeline has not been executed yet: await pipe.exec() first")
        if self._error is not None:
            raise self._error
        value: T = self._value
        return value

    def __await__(self) -> Generator[Any, None, T]:
        return self._get().__await__()


class Pipeline(CommandMethods[V]):
    """Built by `Redis.pipeline()` / `Redis.multi()`; sends through the client's exchange."""

    def __init__(self, exchange: Exchange, options: CallOptions, *, transaction: bool) -> None:
        self._exchange = exchange
        self._options = options
        self._transaction = transaction
        self._queued: list[tuple[Command[Any], Handle[Any]]] = []

    def _run(self, command: Command[T]) -> Awaitable[T]:
        handle: Handle[T] = Handle()
        self._queued.append((command, handle))
        return handle

    def __len__(self) -> int:
        return len(self._queued)

    async def exec(self, *, raise_on_error: bool = False) -> list[Any]:
        """Sends the queued commands in one request and returns their results in order."""
        queued, self._queued = self._queued, []
        if not queued:
            return []
        options = self._options
        commands = [c for c, _ in queued]
        replies = await self._exchange.send(
            commands, "multi" if self._transaction else "pipeline", options
        )
        results: list[Any] = []
        for (command, handle), reply in zip(queued, replies, strict=True):
            try:
                value = options.resolve(command, reply)
            except (RedisError, RedisDecodeError) as exc:
                handle._settle(error=exc)
                results.append(exc)
            else:
                handle._settle(value)
                results.append(value)
        if raise_on_error:
            for item in results:
                if isinstance(item, Exception):
                    raise item
        return results
