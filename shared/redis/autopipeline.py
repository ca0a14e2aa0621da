"""Auto-pipelining: commands awaited concurrently in one event-loop turn share one request.

The batch lives in the current request scope (`shared.scope`), so two requests
never share an HTTP call (Workers forbid awaiting another request's I/O).
Replies come back in issue order and each caller gets its own result or error.

    pipeliner = AutoPipeliner(exchange)
    value = await pipeliner.submit(command, options, max_batch=1000)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.errors import TransportTimeout
from shared.redis.command import Command
from shared.redis.exchange import CallOptions, Exchange
from shared.scope import current_scope

T = TypeVar("T")


@dataclass(slots=True)
class _Entry:
    options: CallOptions
    command: Command[Any]
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _ScopeBatch:
    pending: list[_Entry] = field(default_factory=list)
    scheduled: bool = False
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)  # keeps tasks alive


class AutoPipeliner:
    """Collects commands per request scope and sends them through one `Exchange`."""

    __slots__ = ("__weakref__", "_exchange")

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange

    def _batch(self) -> _ScopeBatch:
        return current_scope().state(self, _ScopeBatch)

    async def submit(self, command: Command[T], options: CallOptions, *, max_batch: int) -> T:
        """Queues `command` with the others of this turn and returns its own value."""
        loop = asyncio.get_running_loop()
        batch = self._batch()
        # Built directly, not by `loop.create_future()`: Pyodide's loop adds a done callback
        # to each future it creates (in-progress accounting), one more JS `setTimeout` per
        # command; the awaiting task is counted already.
        future: asyncio.Future[T] = asyncio.Future(loop=loop)
        entry = _Entry(options, command, future)
        batch.pending.append(entry)
        if len(batch.pending) >= max_batch:
            self._flush(batch, loop)
        elif not batch.scheduled:
            batch.scheduled = True
            result: T = await self._lead(batch, entry, loop)
            return result
        return await future

    async def _lead(
        self, batch: _ScopeBatch, entry: _Entry, loop: asyncio.AbstractEventLoop
    ) -> Any:
        """The first caller of a turn waits for the others, then sends: a lone command
        inline (no task, the common sequential case), several through one task."""
        try:
            # One turn: coroutines started together (gather, or a task created just
            # before this call) run their first step in it and queue their commands.
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            if entry in batch.pending:
                batch.pending.remove(entry)
            if batch.scheduled:
                self._flush(batch, loop)  # the others still go out
            raise
        if not batch.scheduled or entry not in batch.pending:
            return await entry.future  # a full batch already left with our command
        if len(batch.pending) == 1:
            batch.pending, batch.scheduled = [], False
            options = entry.options
            [reply] = await self._exchange.send([entry.command], "single", options)
            return options.resolve(entry.command, reply)
        self._flush(batch, loop)
        return await entry.future

    def _flush(self, batch: _ScopeBatch, loop: asyncio.AbstractEventLoop) -> None:
        entries, batch.pending, batch.scheduled = batch.pending, [], False
        if not entries:
            return
        # Started eagerly: it runs at once up to the HTTP request, no loop turn spent on
        # starting it (in Pyodide each turn is a JS `setTimeout`, and so is the done callback
        # the loop's `create_task` adds). A task all the same, so a cancelled leader cannot
        # take the others' request down with it.
        task = asyncio.Task(self._deliver(entries, batch), loop=loop, eager_start=True)
        if not task.done():
            batch.in_flight.add(task)

    async def _deliver(self, entries: list[_Entry], batch: _ScopeBatch) -> None:
        try:
            await self._deliver_now(entries)
        finally:  # here, not as a done callback: that would cost one more loop turn
            task = asyncio.current_task()
            if task is not None:
                batch.in_flight.discard(task)

    async def _deliver_now(self, entries: list[_Entry]) -> None:
        commands = [e.command for e in entries]
        loop = asyncio.get_running_loop()
        longest = max(e.options.timeout for e in entries)
        total = all(e.options.total for e in entries)
        for entry in entries:  # the request waits for the longest; others give up sooner
            if entry.options.timeout < longest or (entry.options.total and not total):
                loop.call_later(entry.options.timeout, _expire, entry)
        options = CallOptions(
            timeout=longest,
            retry=min((e.options.retry for e in entries), key=lambda r: r.attempts),
            # retried only when every caller allows it for its own command
            retry_writes=all(e.options.retryable([e.command]) for e in entries),
            decoder=entries[0].options.decoder,
            # a whole-call deadline when every caller has one (else each got its timer)
            total=total,
        )
        try:
            replies = await self._exchange.send(
                commands, "single" if len(entries) == 1 else "pipeline", options
            )
        except Exception as exc:
            for entry in entries:
                if not entry.future.done():
                    entry.future.set_exception(exc)
            return
        for entry, reply in zip(entries, replies, strict=True):
            if entry.future.done():  # the caller gave up (its own timeout)
                continue
            try:
                entry.future.set_result(entry.options.resolve(entry.command, reply))
            except Exception as exc:
                entry.future.set_exception(exc)


def _expire(entry: _Entry) -> None:
    if not entry.future.done():
        entry.future.set_exception(
            TransportTimeout(f"{entry.command.name} timed out after {entry.options.timeout:g}s")
        )
