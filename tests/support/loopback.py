"""A tiny aiohttp server on a free loopback port, in the test's own event loop: a stand-in
destination (a QStash target, an email provider) that answers with one handler.

    async with loopback(sink.handle) as url:
        ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def loopback(
    handler: Handler, *, method: str = "*", path: str = "/{tail:.*}"
) -> AsyncIterator[str]:
    """Serves `handler` for `method` requests to `path` (default: every request) until the
    block ends; yields the server's base URL. Handlers still running then (a stand-in that
    hangs on purpose) are cancelled after 0.1 s."""
    app = web.Application()
    app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
