"""Background work handed to the platform after the response.

Workers keep an invocation alive for promises passed to `ctx.waitUntil`; on
Vercel the ASGI adapter awaits the work after the response body is sent and
before the ASGI call returns. The core does not know which: it calls
`defer(awaitable)`, which starts the work at once and records it in the current
request scope; the adapter calls `drain()` (or hands `pending()` to waitUntil).

Failures in background work are logged (never raised into a finished request).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

from shared.scope import ScopeKey, current_scope

log = logging.getLogger(__name__)


class BackgroundWork:
    """The tasks deferred in one request scope, each kept only until it is done (the
    process scope, used outside any request, lives forever: it must not accumulate)."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    def add(self, work: Awaitable[Any]) -> asyncio.Future[Any]:
        future = asyncio.ensure_future(work)
        self._tasks.add(future)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, future: asyncio.Future[Any]) -> None:
        # One callback, not two: in Pyodide each is a JS setTimeout.
        self._tasks.discard(future)
        _log_failure(future)

    def pending(self) -> list[asyncio.Future[Any]]:
        """Work not finished yet (what an adapter hands to `waitUntil`)."""
        return [t for t in self._tasks if not t.done()]

    async def drain(self) -> None:
        """Waits until every deferred task, including ones deferred meanwhile, is done."""
        while True:
            pending = self.pending()
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)


_OWNER = ScopeKey("background")


def background() -> BackgroundWork:
    """The background work of the current request scope."""
    return current_scope().state(_OWNER, BackgroundWork)


def defer(work: Awaitable[Any] | Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
    """Starts `work` now and lets it finish after the response (waitUntil semantics)."""
    return background().add(work)


def _log_failure(future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        log.warning("background task failed: %s: %s", type(exc).__name__, exc)
