"""`Transport` over an httpx `AsyncClient` (CPython, Vercel)."""

from __future__ import annotations

import httpx

from shared.errors import TransportError, TransportTimeout
from shared.http.transport import HttpRequest, HttpResponse


class HttpxTransport:
    """Sends requests with one shared `httpx.AsyncClient` (connection pooling, keep-alive).

    Pass your own client to control limits or proxies; otherwise one is created
    lazily and closed by `aclose()`.
    """

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client
        self._owns_client = client is None

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=100)
            )
        return self._client

    async def send(self, request: HttpRequest) -> HttpResponse:
        client = self._get_client()
        try:
            response = await client.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                content=request.body or None,
                timeout=httpx.Timeout(request.timeout),
            )
        except httpx.TimeoutException as exc:
            raise TransportTimeout(
                f"{request.method} request timed out after {request.timeout:g}s"
            ) from exc
        except httpx.HTTPError as exc:
            raise TransportError(f"{request.method} request failed: {type(exc).__name__}") from exc
        return HttpResponse(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=response.content,
        )

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None
