"""A stand-in for Vercel's edge in front of the launcher: a loopback reverse proxy.

Vercel's edge gives the function its public URL, sets `x-vercel-forwarded-for` (and
overwrites `X-Forwarded-For` and `X-Real-IP`) from the real client and adds the
internal invocation headers the launcher requires. The proxy does the same, so
`APP_URL` can be known before the launcher picks its port and the local QStash can
call the job endpoint back through it. A test chooses
the client address with the `x-test-client-ip` request header.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from aiohttp import web

from tests.launcher.harness import INVOCATION_HEADER, REQUEST_ID_HEADER

_CLIENT_IP_HEADERS = ("x-vercel-forwarded-for", "x-forwarded-for", "x-real-ip")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


class EdgeProxy:
    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.target: str | None = None
        self.request_ids: dict[str, int] = {}  # our x-request-id -> the launcher's request id
        self._ids = itertools.count(1_000_000)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._client = httpx.AsyncClient(timeout=30)
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._client.aclose())
        self._loop.run_until_complete(runner.cleanup())

    async def _forward(self, request: web.Request) -> web.Response:
        if self.target is None:
            return web.json_response({"error": "edge: no target yet"}, status=502)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        client_ip = headers.pop("x-test-client-ip", None) or headers.pop("X-Test-Client-Ip", None)
        # Vercel's edge writes these itself; whatever the client sent under those names is gone.
        for name in [k for k in headers if k.lower() in _CLIENT_IP_HEADERS]:
            del headers[name]
        for name in _CLIENT_IP_HEADERS:
            headers[name] = client_ip or "203.0.113.7"
        launcher_id = next(self._ids)
        headers[INVOCATION_HEADER] = uuid.uuid4().hex
        headers[REQUEST_ID_HEADER] = str(launcher_id)
        body = await request.read()
        response = await self._client.request(
            request.method, self.target + request.path_qs, headers=headers, content=body
        )
        rid = response.headers.get("x-request-id")
        if rid:
            self.request_ids[rid] = launcher_id
        out_headers = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
        return web.Response(status=response.status_code, body=response.content, headers=out_headers)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("edge proxy did not start")

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@contextmanager
def edge_proxy() -> Iterator[EdgeProxy]:
    proxy = EdgeProxy()
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
