"""In-process single flight, per request scope: one caller per key does the work.

Concurrent callers in the same request scope share the first caller's result
(or exception). Scoped because on Workers a request must not await work started
by another request (architecture.md); across requests the Redis lock decides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from shared.scope import current_scope

T = TypeVar("T")


def _flights() -> dict[str, asyncio.Future[Any]]:
    return {}


class SingleFlight:
    """`await flight.run(key, work)`: `work()` runs once per key among concurrent callers."""

    def in_flight(self) -> int:
        """Keys being worked on in the current scope (for tests)."""
        return len(current_scope().state(self, _flights))

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        flights = current_scope().state(self, _flights)
        while (shared := flights.get(key)) is not None:
            try:
                result: T = await asyncio.shield(shared)
                return result
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if shared.cancelled() and (me is None or me.cancelling() == 0):
                    continue  # the leader was cancelled, not us: take over
                raise
        # Built directly, not by `loop.create_future()`: Pyodide's loop adds a done callback
        # to each future it creates (one more JS `setTimeout` per cache read).
        future: asyncio.Future[T] = asyncio.Future(loop=asyncio.get_running_loop())
        flights[key] = future
        try:
            value = await work()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(value)
            return value
        finally:
            if flights.get(key) is future:
                del flights[key]
