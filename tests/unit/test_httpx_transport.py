"""`HttpxTransport` on its asyncio network backend, against small loopback HTTP servers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from shared.errors import TransportError, TransportTimeout
from shared.http.httpx_transport import HttpxTransport
from shared.http.transport import HttpRequest

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 request: its head and its Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return head, body


def answer(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n" % len(body)
    return head + b"".join(h + b"\r\n" for h in extra) + b"\r\n" + body


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


async def test_keepalive_connection_is_reused_and_head_and_body_arrive() -> None:
    """Sequential requests share one connection; each body arrives whole, large ones too."""
    connections = 0
    bodies: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                _, body = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            bodies.append(body)
            writer.write(answer(b"ok:%d" % len(body)))
            await writer.drain()
        writer.close()

    transport = HttpxTransport()
    async with serve(handler) as url:
        sizes = [5, 0, 200_000, 7]
        for size in sizes:
            response = await transport.send(HttpRequest("POST", url, {}, b"x" * size, 5.0))
            assert response.status == 200 and response.body == b"ok:%d" % size
    await transport.aclose()
    assert connections == 1
    assert [len(b) for b in bodies] == sizes


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    """A keep-alive connection closed by the server between requests is replaced, not failed on."""
    connections = 0
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(answer(b"once"))  # no "connection: close", then closes anyway
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        closed.set()

    transport = HttpxTransport()
    async with serve(handler) as url:
        for _ in range(3):
            response = await transport.send(HttpRequest("GET", url, {}, b"", 5.0))
            assert response.body == b"once"
            await closed.wait()
            closed.clear()
    await transport.aclose()
    assert connections == 3


async def test_a_server_that_never_answers_is_a_timeout() -> None:
    """No answer within the request's timeout raises TransportTimeout."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    transport = HttpxTransport()
    async with serve(handler) as url:
        with pytest.raises(TransportTimeout):
            await transport.send(HttpRequest("GET", url, {}, b"", 0.2))
    await transport.aclose()


async def test_a_server_dripping_its_answer_is_cut_at_the_total_deadline() -> None:
    """A server sending its answer a byte at a time (each read well within the timeout)
    is cut off when the request's timeout has passed in total, not per phase."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for byte in answer(b"x" * 200):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    transport = HttpxTransport()
    assert transport.total_deadline
    loop = asyncio.get_running_loop()
    async with serve(handler) as url:
        started = loop.time()
        with pytest.raises(TransportTimeout):
            await transport.send(HttpRequest("GET", url, {}, b"", 0.3))
        assert loop.time() - started < 2.0
    await transport.aclose()


async def test_refused_connection_is_a_transport_error() -> None:
    """Nothing listening raises TransportError (not a timeout)."""
    async with serve(lambda r, w: asyncio.sleep(0)) as url:
        pass  # closed: the port is free again
    transport = HttpxTransport()
    with pytest.raises(TransportError) as raised:
        await transport.send(HttpRequest("GET", url, {}, b"", 2.0))
    assert not isinstance(raised.value, TransportTimeout)
    await transport.aclose()


async def test_headers_are_sent_and_read_lower_case_with_repeats_joined() -> None:
    """Request headers reach the server; response header names are lower-case, repeats joined."""
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        seen.append(head)
        writer.write(answer(b"{}", b"X-Token: 1", b"x-token: 2", b"Upstash-Sync-Token: 9"))
        await writer.drain()
        writer.close()

    transport = HttpxTransport()
    async with serve(handler) as url:
        response = await transport.send(
            HttpRequest("POST", url + "/pipeline", {"Authorization": "Bearer t"}, b"[]", 5.0)
        )
    await transport.aclose()
    assert response.header("X-Token") == "1, 2"
    assert response.headers["upstash-sync-token"] == "9"
    assert seen[0].startswith(b"POST /pipeline HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer t\r\n" in seen[0]


async def test_a_callers_httpx_client_is_used_and_left_open() -> None:
    """With an httpx.AsyncClient passed in, requests go through it and aclose leaves it open."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"via client"))
        await writer.drain()
        writer.close()

    calls: list[str] = []

    async def hook(request: httpx.Request) -> None:
        calls.append(str(request.url))

    async with serve(handler) as url, httpx.AsyncClient(event_hooks={"request": [hook]}) as client:
        transport = HttpxTransport(client)
        response = await transport.send(HttpRequest("GET", url + "/x", {}, b"", 5.0))
        await transport.aclose()
        assert not client.is_closed
    assert response.body == b"via client" and calls == [url + "/x"]


def test_the_default_transport_and_the_vercel_entry_import_no_httpx() -> None:
    """Importing the Vercel entry and sending through the default transport load neither
    httpx (its models and CLI) nor pydantic: only httpcore and h11."""
    script = (
        "import asyncio, sys\n"
        "import vercel_api.index\n"
        "from shared.http import HttpxTransport\n"
        "from shared.http.transport import HttpRequest\n"
        "t = HttpxTransport()\n"
        "async def main():\n"
        "    try:\n"
        "        await t.send(HttpRequest('GET', 'http://127.0.0.1:9/', {}, b'', 1.0))\n"
        "    except Exception:\n"
        "        pass\n"
        "    await t.aclose()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in ('httpx', 'pydantic', 'click', 'httpcore') if m in sys.modules))\n"
    )
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=repo, capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "['httpcore']", proc.stdout + proc.stderr
