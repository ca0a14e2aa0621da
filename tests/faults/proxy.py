"""A loopback fault-injection proxy: a TCP listener that speaks just enough HTTP/1.1.

    proxy = FaultProxy(("127.0.0.1", 6380)).start()     # background thread, free port
    client_url = proxy.url                                 # point the app here
    proxy.set_mode("hang")                                 # switch at runtime
    proxy.fail_next(2, "http500")                          # next 2 requests fail, then pass
    proxy.seen["http500"]                                  # requests that got each fault
    proxy.stop()

Every request is read whole (head plus `Content-Length` or chunked body) and then
either forwarded or failed, according to the mode at that moment:

- `pass`: forwarded on a fresh upstream connection with `Connection: close`; the
  upstream's answer is relayed as is (but for `Connection: close`), then both
  connections close (one connection carries one request, so counting is exact);
- `refuse`: the listener is closed, so connects are refused (ECONNREFUSED); it listens
  again on the same port when the mode changes. Refused connects are never seen;
- `hang`: the request is read and never answered; the connection is dropped when the
  mode changes or the proxy stops (never blocks shutdown);
- `http500`: `HTTP/1.1 500` with a small JSON body, nothing forwarded;
- `reset`: the request is read, then the connection is closed with `SO_LINGER 0` (RST);
- `slow`: forwarded, the answer held `delay` seconds before it is relayed;
- `drip`: forwarded, the answer relayed one byte every `delay` seconds: no single read
  waits long, so only a total deadline (not per-phase timeouts) cuts it short;
- `fail_next(n, fault)`: the next `n` requests get `fault` (`http500`, `reset`, `hang`),
  then the base mode applies again.

`seen` counts requests per fault actually applied; `log` keeps (method, path, fault)
per request, in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["pass", "refuse", "hang", "http500", "reset", "slow", "drip"]
Fault = Literal["http500", "reset", "hang"]
MODES: tuple[str, ...] = ("pass", "refuse", "hang", "http500", "reset", "slow", "drip")
FAULTS: tuple[str, ...] = ("http500", "reset", "hang")

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection"}
ERROR_BODY = b'{"error":"fault injected by the test proxy"}'
HTTP_500 = (
    b"HTTP/1.1 500 Internal Server Error\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(ERROR_BODY)).encode() + b"\r\n"
    b"Connection: close\r\n\r\n" + ERROR_BODY
)


class BadRequest(Exception):
    """The client sent something this proxy cannot frame."""


@dataclass(frozen=True, slots=True)
class Seen:
    method: str
    path: str
    fault: str


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes, bytes]:
    """One request: (request line, header lines without the hop-by-hop ones, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEAD:
        raise BadRequest("head too large")
    lines = head[:-4].split(b"\r\n")
    request_line, header_lines = lines[0], lines[1:]
    length, chunked, kept = 0, False, []
    for line in header_lines:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key in HOP_BY_HOP:
            continue
        if key == b"content-length":
            length = int(value.strip())
        if key == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        kept.append(line)
    if chunked:
        body = await _read_chunked(reader)
    else:
        if length > MAX_BODY:
            raise BadRequest("body too large")
        body = await reader.readexactly(length)
    return request_line, b"\r\n".join(kept), body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """The raw chunked body, terminator included (relayed as is)."""
    parts: list[bytes] = []
    size = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        parts.append(line)
        chunk = int(line.split(b";")[0].strip() or b"0", 16)
        if chunk == 0:
            while True:  # trailers up to the empty line
                trailer = await reader.readuntil(b"\r\n")
                parts.append(trailer)
                if trailer == b"\r\n":
                    return b"".join(parts)
        size += chunk
        if size > MAX_BODY:
            raise BadRequest("body too large")
        parts.append(await reader.readexactly(chunk + 2))


def _rst(writer: asyncio.StreamWriter) -> None:
    """Closes with SO_LINGER 0: the peer gets a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Forwards loopback TCP to `target` = (host, port), failing requests on demand."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host
        with socket.socket() as probe:
            probe.bind((host, 0))
            self.port: int = probe.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.seen: Counter[str] = Counter()
        self.log: list[Seen] = []
        self._mode: Mode = "pass"
        self._delay = 0.0
        self._pending: list[Fault] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._changed: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, name=f"fault-proxy-{self.port}")
        self._thread.daemon = True

    # -- control (any thread) ---------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._mode

    def start(self) -> FaultProxy:
        ready = threading.Event()
        self._loop.call_soon(ready.set)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        self._call(self._listen())
        return self

    def set_mode(self, mode: Mode, *, delay: float = 0.0) -> None:
        """Switches the fault for every later request; `delay` (seconds): `slow`, `drip`."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self._call(self._switch(mode, delay))

    def fail_next(self, count: int, fault: Fault = "http500") -> None:
        """The next `count` requests get `fault`; the current mode applies after them."""
        if fault not in FAULTS:
            raise ValueError(f"fail_next takes one of {FAULTS}, not {fault!r}")
        with self._lock:
            self._pending.extend([fault] * count)

    def requests(self, path_prefix: str = "", fault: str | None = None) -> list[Seen]:
        """Requests seen so far, optionally those under `path_prefix` that got `fault`."""
        with self._lock:
            return [
                s
                for s in self.log
                if s.path.startswith(path_prefix) and (fault is None or s.fault == fault)
            ]

    def reset_counts(self) -> None:
        with self._lock:
            self.seen.clear()
            self.log.clear()

    def stop(self) -> None:
        """Releases hung connections, closes everything, joins the thread (bounded)."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop (proxy thread) ------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._changed = asyncio.Event()
        self._loop.run_forever()
        self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, None], timeout: float = 10.0) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, self.host, self.port, reuse_address=True, backlog=256
            )

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _switch(self, mode: Mode, delay: float) -> None:
        self._mode, self._delay = mode, delay
        assert self._changed is not None
        self._changed.set()  # wakes every hung connection: it is dropped
        self._changed = asyncio.Event()
        if mode == "refuse":
            await self._unlisten()
        else:
            await self._listen()

    async def _shutdown(self) -> None:
        await self._unlisten()
        if self._changed is not None:
            self._changed.set()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def _next_fault(self) -> tuple[str, float]:
        with self._lock:
            if self._pending:
                return self._pending.pop(0), 0.0
        return self._mode, self._delay

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve_one(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, BadRequest, ValueError):
            pass
        except asyncio.CancelledError:  # stop(): end quietly (asyncio logs a cancelled handler)
            pass
        finally:
            self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.transport.abort()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line, headers, body = await read_request(reader)
        parts = request_line.decode("latin-1").split(" ")
        method, path = parts[0], parts[1] if len(parts) > 1 else "/"
        fault, delay = self._next_fault()
        with self._lock:
            self.seen[fault] += 1
            self.log.append(Seen(method, path, fault))
        if fault == "http500":
            writer.write(HTTP_500)
            await writer.drain()
            writer.close()
        elif fault == "reset":
            _rst(writer)
        elif fault == "hang" or fault == "refuse":  # refuse: raced the listener closing
            assert self._changed is not None
            await self._changed.wait()
            _rst(writer)
        else:
            answer = await self._forward(request_line, headers, body)
            if fault == "slow" and delay > 0:
                await asyncio.sleep(delay)  # the fault itself: an upstream this slow
            if fault == "drip":
                for i in range(len(answer)):
                    writer.write(answer[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(delay)
            else:
                writer.write(answer)
                await writer.drain()
            writer.close()

    async def _forward(self, request_line: bytes, headers: bytes, body: bytes) -> bytes:
        """One exchange with the target on its own connection; the raw answer, or a 502."""
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            return HTTP_500.replace(b"500 Internal Server Error", b"502 Bad Gateway")
        try:
            lines = [request_line, *([headers] if headers else []), b"Connection: close"]
            up_writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            await up_writer.drain()
            return closing(await up_reader.read())  # until the upstream closes
        finally:
            up_writer.transport.abort()


def closing(answer: bytes) -> bytes:
    """The upstream's answer with `Connection: close`, so the client never reuses the socket."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return answer
    lines = head.split(b"\r\n")
    kept = [line for line in lines[1:] if line.partition(b":")[0].strip().lower() not in HOP_BY_HOP]
    return b"\r\n".join([lines[0], *kept, b"Connection: close"]) + sep + body
