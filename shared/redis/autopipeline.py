"""Auto-pipelining: commands awaited concurrently in one event-loop turn share one request.

The batch lives in the current request scope (`shared.scope`), so two requests
never share an HTTP call (Workers forbid awaiting another request's I/O).
Replies come back in issue order and each caller gets its own result or error.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from shared.errors import TransportTimeout
from shared.redis.command import Command
from shared.scope import current_scope

if TYPE_CHECKING:
    from shared.redis.client import Redis

T = TypeVar("T")


@dataclass(slots=True)
class _Entry:
    client: Redis[Any]
    command: Command[Any]
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _ScopeBatch:
    pending: list[_Entry] = field(default_factory=list)
    scheduled: bool = False
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    requests_sent: int = 0


class AutoPipeliner:
    """Collects commands per request scope and flushes them on the next loop turns."""

    def _batch(self) -> _ScopeBatch:
        return current_scope().state(self, _ScopeBatch)

    def requests_sent(self) -> int:
        """HTTP requests this pipeliner sent in the current scope (for tests and benchmarks)."""
        return self._batch().requests_sent

    async def submit(self, client: Redis[Any], command: Command[T]) -> T:
        loop = asyncio.get_running_loop()
        batch = self._batch()
        future: asyncio.Future[T] = loop.create_future()
        batch.pending.append(_Entry(client, command, future))
        if len(batch.pending) >= client._max_batch:
            self._flush(batch, loop)
        elif not batch.scheduled:
            batch.scheduled = True
            # Two turns: coroutines started by the same gather() all get to queue first.
            loop.call_soon(loop.call_soon, self._flush, batch, loop)
        try:
            async with asyncio.timeout(client.timeout):
                return await future
        except TimeoutError:
            raise TransportTimeout(f"{command.name} timed out after {client.timeout:g}s") from None

    def _flush(self, batch: _ScopeBatch, loop: asyncio.AbstractEventLoop) -> None:
        entries, batch.pending, batch.scheduled = batch.pending, [], False
        if not entries:
            return
        batch.requests_sent += 1
        task = loop.create_task(self._deliver(entries))
        batch.in_flight.add(task)
        task.add_done_callback(batch.in_flight.discard)

    async def _deliver(self, entries: list[_Entry]) -> None:
        first = entries[0].client
        commands = [e.command for e in entries]
        retry = min((e.client._retry for e in entries), key=lambda r: r.attempts)
        try:
            replies = await first._send(
                commands,
                "single" if len(entries) == 1 else "pipeline",
                timeout=max(e.client.timeout for e in entries),
                retry=retry,
                retryable=all(e.client._retryable([e.command]) for e in entries),
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
                entry.future.set_result(entry.client.resolve(entry.command, reply))
            except Exception as exc:
                entry.future.set_exception(exc)
