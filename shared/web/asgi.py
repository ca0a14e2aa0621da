"""The ASGI adapter (Vercel, uvicorn): ASGI scope -> `Request`, `Response` -> ASGI messages.

Background work deferred during a request (`shared.background.defer`) is awaited
after the final response body is sent and before the ASGI call returns: the
client already has its answer and the Vercel invocation stays alive until the
call returns (runtimes.md).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from shared.background import background
from shared.scope import request_scope
from shared.web.geo import country_code
from shared.web.http import Headers, Request, Response
from shared.web.served import BodyTooLarge, Served, early_answer

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def read_body(receive: Receive, limit: int) -> bytes:
    """Reads the request body, stopping as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def client_ip_from(headers: Headers, scope: Scope, trusted_header: str | None = None) -> str | None:
    """The client's address as the platform states it, never as the client claims it.

    With `trusted_header` (`x-vercel-forwarded-for` on Vercel, or `TRUSTED_PROXY_HEADER`):
    its RIGHT-most entry, the one the trusted proxy wrote (entries to its left came from
    the client). Otherwise, or when that header is absent, the socket peer.
    """
    if trusted_header is not None:
        value = headers.get(trusted_header)
        if value:
            last = value.rsplit(",", 1)[-1].strip()
            if last:
                return last
    client = scope.get("client")
    return str(client[0]) if client else None


def country_from(headers: Headers, trusted_header: str | None) -> str | None:
    """The platform's country code (`x-vercel-ip-country` on Vercel), only from a header
    the platform sets: without one, a client could claim any country."""
    return country_code(headers.get(trusted_header)) if trusted_header else None


async def send_response(send: Send, response: Response) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": False})


class AsgiAdapter:
    """Serves the app that `build()` assembles (once, on the first request) as ASGI.

    Building lazily keeps import free of I/O and lets a configuration error answer
    as JSON instead of crashing the function at import.
    """

    def __init__(self, build: Callable[[], Served]) -> None:
        self._build = build
        self._bundle: Served | None = None

    def bundle(self) -> Served:
        if self._bundle is None:
            self._bundle = self._build()
        return self._bundle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        async with request_scope():
            headers = Headers(
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])
            )
            try:
                bundle = self.bundle()
                body = await read_body(receive, bundle.max_body_bytes)
            except Exception as exc:  # too large, or a configuration error: JSON, no traceback
                await send_response(send, early_answer(exc))
                return
            request = Request(
                method=scope["method"].upper(),
                path=scope.get("path") or "/",
                query_string=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,
                body=body,
                client_ip=client_ip_from(headers, scope, bundle.client_ip_header),
                country=country_from(headers, bundle.country_header),
            )
            response = await bundle.app.handle(request)
            await send_response(send, response)
            # After the response: the client has it; the invocation lives until we return.
            await background().drain()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
