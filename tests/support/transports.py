"""A transport that counts: the real httpx transport, recording the URL of every request it
sends. On Workers each one is a subrequest; to Redis each one is a round trip."""

from __future__ import annotations

from shared.http.httpx_transport import HttpxTransport
from shared.http.transport import HttpRequest, HttpResponse


class CountingTransport:
    """Forwards to a real `HttpxTransport` and appends each request's URL to `sent`."""

    def __init__(self) -> None:
        self.inner = HttpxTransport()
        self.sent: list[str] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request.url)
        return await self.inner.send(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
