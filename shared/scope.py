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
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ScopeKey:
    """A module-level owner of scope state (weakly referenceable, unlike `object()`)."""

    __slots__ = ("__weakref__", "name")

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"ScopeKey({self.name!r})"


class RequestScope:
    """A bag of per-scope state, keyed by the owner object (one client, one cache...).

    A request's scope holds its owners strongly (for one request, a plain dict: no weak
    reference built per lookup); the long-lived process scope holds them weakly, so that
    state dies with its owner and a new owner never inherits a collected one's state.
    """

    __slots__ = ("_state", "name")

    def __init__(self, name: str, *, weak_owners: bool = False) -> None:
        self.name = name
        self._state: dict[Any, Any] | weakref.WeakKeyDictionary[Any, Any] = (
            weakref.WeakKeyDictionary() if weak_owners else {}
        )

    def state(self, owner: object, factory: Callable[[], T]) -> T:
        """The state `owner` keeps in this scope, created by `factory` on first use.

        `owner` must be weakly referenceable: an instance, or a module-level `ScopeKey`.
        """
        try:
            found: T = self._state[owner]
        except KeyError:
            found = self._state[owner] = factory()
        return found


_PROCESS_SCOPE = RequestScope("process", weak_owners=True)
_current: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "upstash_edge_request_scope", default=None
)


def current_scope() -> RequestScope:
    """The innermost open request scope, or the process-wide one outside any request."""
    scope = _current.get()
    return scope if scope is not None else _PROCESS_SCOPE


class request_scope:  # a function to its callers: `async with request_scope():`
    """Opens a fresh scope for the duration of one request (a class, not a generator-based
    context manager: entered on every request, it builds no async generator)."""

    __slots__ = ("_scope", "_token")

    def __init__(self, name: str = "request") -> None:
        self._scope = RequestScope(name)
        self._token: contextvars.Token[RequestScope | None] | None = None

    async def __aenter__(self) -> RequestScope:
        self._token = _current.set(self._scope)
        return self._scope

    async def __aexit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
