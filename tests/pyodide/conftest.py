"""Fixtures for the Pyodide layer: the Pyodide version matrix and a loopback echo server
(see runner.EchoServer for its routes)."""

from __future__ import annotations

import asyncio
import base64
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

# pytest runs with --import-mode=importlib, which puts no test directory on sys.path: make
# runner.py (the helpers the tests import) importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import PYODIDE_VERSIONS, EchoServer, require_pyodide


@pytest.fixture(params=PYODIDE_VERSIONS, ids=[f"pyodide-{v}" for v in PYODIDE_VERSIONS])
def pyodide_version(request: pytest.FixtureRequest) -> str:
    """Each Pyodide the Workers runtime may use; fails (never skips) without `npm ci`."""
    version: str = request.param
    require_pyodide(version)
    return version


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def echo_server() -> Iterator[EchoServer]:
    records: list[dict[str, Any]] = []
    stopping = asyncio.Event()

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body_b64": base64.b64encode(body).decode(),
                "body": body.decode("utf-8", errors="replace"),
            },
            headers={"x-echo": "yes"},
        )

    async def raw_bytes(request: web.Request) -> web.Response:
        return web.Response(body=bytes(range(256)), content_type="application/octet-stream")

    hang_aborts = [0]

    async def hang(request: web.Request) -> web.Response:
        try:
            await stopping.wait()  # released at teardown so no handler is left pending
        except asyncio.CancelledError:  # the client went away
            hang_aborts[0] += 1
            raise
        return web.Response(text="late")

    async def hang_stats(request: web.Request) -> web.Response:
        return web.json_response({"aborted": hang_aborts[0]})

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"partial": ')  # the head and a first chunk, then nothing
        await stopping.wait()
        return response

    async def record(request: web.Request) -> web.Response:
        records.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/echo{tail:.*}", echo)
    app.router.add_get("/bytes", raw_bytes)
    app.router.add_route("*", "/hang", hang)
    app.router.add_get("/hang-stats", hang_stats)
    app.router.add_get("/drip", drip)
    app.router.add_post("/record", record)

    loop = asyncio.new_event_loop()
    # Handlers are cancelled when their client goes away (/hang counts it).
    runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
    port = _free_port()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=serve, name="pyodide-echo-server", daemon=True)
    thread.start()
    assert ready.wait(10), "echo server did not start"
    try:
        yield EchoServer(
            url=f"http://127.0.0.1:{port}",
            refused_url=f"http://127.0.0.1:{_free_port()}/nothing-listens-here",
            records=records,
        )
    finally:
        # Cleanup cancels the handlers still parked in /hang, then the loop stops.
        loop.call_soon_threadsafe(stopping.set)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
