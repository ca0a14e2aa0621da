"""An httpcore network backend on plain asyncio streams (CPython), for `HttpxTransport`.

httpcore's default backend goes through anyio, which adds a checkpoint (an extra
event-loop turn) and a cancel scope to every read and write. This one calls asyncio
directly, and it sends a request's head and body in ONE socket write: writes are
held until the next read (or until `HOLD_LIMIT` bytes are waiting), which is when
httpcore has written the whole request.

Timeouts: each `read`/`write`/`connect` honours its `timeout` like httpcore's own
backends (httpcore's `ReadTimeout`, `WriteTimeout`, `ConnectTimeout`), and the
caller keeps its total deadline on top (`shared.redis.exchange`).
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore

HOLD_LIMIT = 64 * 1024  # bytes held before a write goes out without waiting for a read
READ_CHUNK = 64 * 1024

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection: an asyncio `StreamReader`/`StreamWriter` pair."""

    __slots__ = ("_held", "_poller", "_reader", "_writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._held: list[bytes] = []
        self._poller: select.poll | None = None  # built on the first idle check

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self._flush(timeout)
        try:
            if timeout is None:
                return await self._reader.read(max_bytes)
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout("read timed out") from None
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._held.append(buffer)
        if sum(len(b) for b in self._held) >= HOLD_LIMIT:
            await self._flush(timeout)

    async def _flush(self, timeout: float | None) -> None:
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held = []
        writer = self._writer
        try:
            writer.write(data)  # sent at once when the socket can take it
            transport = writer.transport
            if transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]:
                async with asyncio.timeout(timeout):
                    await writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout("write timed out") from None
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self._held = []
        self._writer.close()  # no wait: nothing is owed to a connection being dropped

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        await self._flush(timeout)
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            raise httpcore.ConnectTimeout("TLS handshake timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":  # an idle keep-alive connection the server closed
            return self._reader.at_eof() or self._socket_readable()
        return None

    def _socket_readable(self) -> bool:
        """Whether the kernel holds data or EOF the loop has not read yet (httpcore asks
        for every idle connection on every request: one `poll(0)`, the poller kept)."""
        if self._writer.transport.is_closing():
            return True
        poller = self._poller
        if poller is None:
            sock = self._writer.get_extra_info("socket")
            if sock is None:
                return True
            poller = self._poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Opens `AsyncioStream`s; TCP_NODELAY is on (one write per request, nothing to coalesce)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                    limit=READ_CHUNK,
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout("connect timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            for option in socket_options or ():
                sock.setsockopt(*option)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path, limit=READ_CHUNK)
        except TimeoutError:
            raise httpcore.ConnectTimeout("connect timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
