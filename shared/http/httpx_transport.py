"""`Transport` over httpx's connection engine (CPython, Vercel).

By default requests go straight to an `httpcore` connection pool (the engine inside
httpx) on a plain-asyncio network backend (`shared.http.asyncio_backend`): HTTP/1.1
only, keep-alive connections reused, nothing built per request that can be built
once (parsed URLs, encoded header names). httpx's `AsyncClient` layers (auth,
redirects, cookies, event hooks) are skipped because the core uses none of them.
Pass your own `httpx.AsyncClient` to get those back (proxies, custom TLS, mounts).
Without one, httpx's own module is never imported: starting the function loads only
httpcore and h11 (httpx's models, and its CLI module pulling click, rich and pygments
where they are installed, cost tens of milliseconds of import).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpcore

from shared.errors import TransportError, TransportTimeout
from shared.http.transport import HttpRequest, HttpResponse

if TYPE_CHECKING:  # httpx itself is imported only with a caller's client (it then is loaded)
    import httpx

MAX_CONNECTIONS = 100  # per process; concurrent requests beyond this wait for a free one
KEEPALIVE_EXPIRY_S = 30.0  # an idle connection older than this is closed, not reused
_URL_CACHE_SIZE = 256
_NO_PHASE_TIMEOUTS = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"))}

_NETWORK_ERRORS = (
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
    OSError,
)


class HttpxTransport:
    """Sends requests over one connection pool (connection pooling, keep-alive).

    Pass your own `httpx.AsyncClient` to control limits, proxies or TLS; otherwise a
    pool is created lazily and closed by `aclose()`.
    """

    # `request.timeout` bounds the whole exchange here, not each phase (httpx's own timeouts
    # are per phase: a server dripping its answer would pass every one of them), so callers
    # need not arm a timer of their own.
    total_deadline = True

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client  # the caller's: used as is, never closed here
        self._pool: httpcore.AsyncConnectionPool | None = None
        self._urls: dict[str, httpcore.URL] = {}
        self._header_names: dict[str, bytes] = {}

    def _get_pool(self) -> httpcore.AsyncConnectionPool:
        if self._pool is None:
            from shared.http.asyncio_backend import AsyncioBackend

            self._pool = httpcore.AsyncConnectionPool(
                max_connections=MAX_CONNECTIONS,
                max_keepalive_connections=MAX_CONNECTIONS,
                keepalive_expiry=KEEPALIVE_EXPIRY_S,
                http1=True,
                http2=False,
                network_backend=AsyncioBackend(),
            )
        return self._pool

    def _url(self, url: str) -> httpcore.URL:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            parsed = self._urls[url] = httpcore.URL(url)
        return parsed

    def _headers(self, request: HttpRequest) -> list[tuple[bytes, bytes]]:
        names = self._header_names
        headers = []
        for name, value in request.headers.items():
            raw = names.get(name)
            if raw is None:
                raw = names[name] = name.encode("ascii")
            headers.append((raw, value.encode("latin-1")))
        return headers

    async def send(self, request: HttpRequest) -> HttpResponse:
        try:
            async with asyncio.timeout(request.timeout):
                if self._client is not None:
                    return await self._send_with_client(self._client, request)
                return await self._send(request)
        except TimeoutError:
            raise TransportTimeout(
                f"{request.method} request timed out after {request.timeout:g}s"
            ) from None

    async def _send(self, request: HttpRequest) -> HttpResponse:
        try:
            # No deadline per phase: `send` bounds the whole exchange, and a phase never
            # outlasts it (each phase's timer would be one more timer per read and write).
            response = await self._get_pool().request(
                request.method,
                self._url(request.url),
                headers=self._headers(request),
                content=request.body or None,
                extensions=_NO_PHASE_TIMEOUTS,
            )
        except httpcore.TimeoutException as exc:
            raise TransportTimeout(
                f"{request.method} request timed out after {request.timeout:g}s"
            ) from exc
        except (*_NETWORK_ERRORS, UnicodeEncodeError, ValueError) as exc:
            raise TransportError(f"{request.method} request failed: {type(exc).__name__}") from exc
        headers: dict[str, str] = {}
        for raw_name, raw_value in response.headers:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return HttpResponse(status=response.status, headers=headers, body=response.content)

    async def _send_with_client(
        self, client: httpx.AsyncClient, request: HttpRequest
    ) -> HttpResponse:
        import httpx

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
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.aclose()
