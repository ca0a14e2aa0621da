"""Request scopes: the boundary for sharing in-flight work.

On Cloudflare Workers one isolate serves concurrent requests, but I/O started
for one request must not be awaited by another ("Cannot perform I/O on behalf
of a different request"). So anything that shares in-flight work between
callers (the auto-pipelining batch, the cache's single flight) keeps it in the
current `RequestScope`. The entrypoints open one scope per request:

    async with request_scope():
        response = await app.handle(request)

Code outside any scope (scripts, benchmarks, tests) shares one process scope.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class RequestScope:
    """A bag of per-scope state, keyed by the owner object (one client, one cache...)."""

    __slots__ = ("_state", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._state: dict[int, Any] = {}

    def state(self, owner: object, factory: Callable[[], T]) -> T:
        """The state `owner` keeps in this scope, created by `factory` on first use."""
        key = id(owner)
        try:
            value: T = self._state[key]
        except KeyError:
            value = factory()
            self._state[key] = value
        return value


_PROCESS_SCOPE = RequestScope("process")
_current: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "upstash_edge_request_scope", default=None
)


def current_scope() -> RequestScope:
    """The innermost open request scope, or the process-wide one outside any request."""
    scope = _current.get()
    return scope if scope is not None else _PROCESS_SCOPE


@asynccontextmanager
async def request_scope(name: str = "request") -> AsyncIterator[RequestScope]:
    """Opens a fresh scope for the duration of one request."""
    scope = RequestScope(name)
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)
