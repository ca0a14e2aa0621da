"""An ASGI app served over real loopback HTTP by uvicorn in a thread, for tests that need a
URL (QStash delivering jobs to the app, a fuzzer, fault proxies in between).

The socket is bound before the app is built, so the app's `APP_URL` is known up front:

    with served_app(lambda url: {**app_env(devstack.raw, url), "RATE_LIMIT": "1000/10s"}) as url:
        httpx.get(url + "/api/health")
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import uvicorn

from shared.app.assembly import build_app
from shared.http.httpx_transport import HttpxTransport
from shared.web.asgi import AsgiAdapter
from tests.support.waiting import wait_for

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0


def loopback_socket() -> tuple[socket.socket, str]:
    """A socket bound to a free loopback port (not yet listening), and its base URL."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def uvicorn_in_thread(
    app: Any,
    sock: socket.socket,
    *,
    name: str = "app",
    after: Callable[[], Awaitable[None]] | None = None,
) -> Iterator[None]:
    """Serves `app` on `sock` in a daemon thread (no lifespan, no logging config, no access
    log) until the block ends; then stops it (5 s grace for calls in flight), awaits `after`
    in the server's loop (to close what the app opened there) and closes `sock`."""
    config = uvicorn.Config(
        app, lifespan="off", log_config=None, access_log=False, timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            if after is not None:
                await after()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name=name, daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: server.started or not thread.is_alive(),
            "uvicorn to start",
            timeout=START_TIMEOUT_S,
        )
        assert server.started, "uvicorn stopped before it started serving"
        yield
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        sock.close()


@contextmanager
def served_app(env_for: Callable[[str], Mapping[str, str]], *, name: str = "app") -> Iterator[str]:
    """The app (`build_app` + `AsgiAdapter`, as `vercel_api/index.py`) built from
    `env_for(its own URL)`, served on a free loopback port; yields that URL. The app's
    outbound transport is closed when the server stops."""
    sock, url = loopback_socket()
    env = env_for(url)
    transport = HttpxTransport()
    adapter = AsgiAdapter(lambda: build_app(env, transport=transport))
    with uvicorn_in_thread(adapter, sock, name=name, after=transport.aclose):
        yield url
