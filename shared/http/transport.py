"""The one-method transport protocol and its request/response values."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from shared.errors import TransportTimeout


def _safe_url(url: str) -> str:
    """The URL without its query, fragment or user info (any of them may carry a secret)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable url>"
    query = "?<redacted>" if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{query}"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One outgoing HTTP request; `timeout` is in seconds and always set.

    Its repr shows header names, never values (bearer tokens, the Vercel bypass
    secret, `Upstash-Forward-*`), and the body's length, never the body.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    timeout: float = 5.0

    def __repr__(self) -> str:
        return (
            f"HttpRequest(method={self.method!r}, url={_safe_url(self.url)!r}, "
            f"headers={sorted(self.headers)!r}, body=<{len(self.body)} bytes>, "
            f"timeout={self.timeout:g})"
        )


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A complete HTTP response; header names are lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def __repr__(self) -> str:  # names and a length only: a body may hold records or tokens
        return (
            f"HttpResponse(status={self.status}, headers={sorted(self.headers)!r}, "
            f"body=<{len(self.body)} bytes>)"
        )

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Transport(Protocol):
    """Sends one request and returns the whole response.

    Implementations raise `shared.errors.TransportTimeout` when `request.timeout`
    runs out and `shared.errors.TransportError` for every other failure to get a
    response; an HTTP error status is a response, not an exception. Both transports
    here bound the WHOLE exchange by `request.timeout` (and say so with a true
    `total_deadline` attribute, so callers need not arm a second timer); a transport
    without that attribute is wrapped in a total deadline by its callers.
    """

    async def send(self, request: HttpRequest) -> HttpResponse: ...


async def send_within(transport: Transport, request: HttpRequest, what: str) -> HttpResponse:
    """`transport.send(request)` with `request.timeout` bounding the WHOLE exchange.

    A transport whose `total_deadline` is true enforces that itself (both transports here
    do), so no second timer is armed (in Pyodide each is a JS `setTimeout`); any other
    is wrapped in one. Past the deadline: `TransportTimeout` naming `what`.
    """
    if getattr(transport, "total_deadline", False):
        return await transport.send(request)
    try:
        async with asyncio.timeout(request.timeout):
            return await transport.send(request)
    except TimeoutError:
        raise TransportTimeout(f"{what} request timed out after {request.timeout:g}s") from None
