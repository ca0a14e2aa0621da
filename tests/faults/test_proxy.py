"""The fault proxy itself, against a tiny echo HTTP server: each mode does what it says."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.faults.proxy import FaultProxy
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.timeout(60)]


class Echo(ThreadingHTTPServer):
    """Answers every request `200 <method> <path> <body>` and counts what it received."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), EchoHandler)
        self.received: list[str] = []


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Echo

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.received.append(self.path)
        out = f"{self.command} {self.path} ".encode() + body
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy(echo: Echo) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", echo.server_address[1])) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def test_pass_forwards_requests_and_bodies(
    proxy: FaultProxy, echo: Echo, http: httpx.Client
) -> None:
    """In pass mode each request reaches the target and its answer comes back unchanged."""
    first = http.get(proxy.url + "/a?x=1")
    second = http.post(proxy.url + "/b", content=b"hello")
    assert (first.status_code, first.text) == (200, "GET /a?x=1 ")
    assert (second.status_code, second.text) == (200, "POST /b hello")
    assert echo.received == ["/a?x=1", "/b"]
    assert proxy.seen == {"pass": 2}
    assert [(s.method, s.path) for s in proxy.requests()] == [("GET", "/a?x=1"), ("POST", "/b")]


def test_pass_relays_a_chunked_request_body(proxy: FaultProxy, echo: Echo) -> None:
    """A chunked request body is relayed whole (the target reads it as it was sent)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(
            b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n"
        )
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.")
    assert echo.received == ["/c"]
    assert proxy.seen == {"pass": 1}


def test_refuse_refuses_connects_until_the_mode_changes(
    proxy: FaultProxy, echo: Echo, http: httpx.Client
) -> None:
    """In refuse mode a connect fails with ECONNREFUSED; back in pass it works again."""
    proxy.set_mode("refuse")
    with pytest.raises(httpx.ConnectError):
        http.get(proxy.url + "/x")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5).close()
    proxy.set_mode("pass")
    assert http.get(proxy.url + "/y").status_code == 200
    assert echo.received == ["/y"]


def get_in_thread(url: str) -> tuple[threading.Thread, list[BaseException | int]]:
    """GETs `url` from a new thread (the request may hang); the thread, and the list its
    outcome lands in (the status, or the httpx error)."""
    outcome: list[BaseException | int] = []

    def call() -> None:
        try:
            with httpx.Client(timeout=30) as client:
                outcome.append(client.get(url).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    return thread, outcome


def test_hang_never_answers_and_is_released_by_a_mode_change(proxy: FaultProxy, echo: Echo) -> None:
    """A hung request gets no answer (client timeout); switching modes drops it at once."""
    proxy.set_mode("hang")
    with httpx.Client(timeout=0.5) as short, pytest.raises(httpx.ReadTimeout):
        short.get(proxy.url + "/slow")
    thread, outcome = get_in_thread(proxy.url + "/held")
    wait_for(lambda: proxy.seen["hang"] == 2, "two hanging connections", timeout=5)
    started = time.monotonic()
    proxy.set_mode("pass")
    thread.join(10)
    assert time.monotonic() - started < 5
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.TransportError)
    assert echo.received == []


def test_stop_releases_hung_connections(echo: Echo) -> None:
    """Stopping the proxy with a hung request in flight returns promptly."""
    proxy = FaultProxy(("127.0.0.1", echo.server_address[1])).start()
    proxy.set_mode("hang")
    thread, outcome = get_in_thread(proxy.url + "/held")
    wait_for(lambda: proxy.seen["hang"] == 1, "a hanging connection", timeout=5)
    started = time.monotonic()
    proxy.stop()
    thread.join(10)
    assert time.monotonic() - started < 5
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.HTTPError)


def test_http500_answers_without_forwarding(
    proxy: FaultProxy, echo: Echo, http: httpx.Client
) -> None:
    """In http500 mode every request gets a 500 JSON answer and the target sees nothing."""
    proxy.set_mode("http500")
    responses = [http.post(proxy.url + "/x", content=b"{}") for _ in range(3)]
    assert {r.status_code for r in responses} == {500}
    assert responses[0].json() == {"error": "fault injected by the test proxy"}
    assert echo.received == []
    assert proxy.seen == {"http500": 3}


def test_reset_sends_a_tcp_rst(proxy: FaultProxy, echo: Echo, http: httpx.Client) -> None:
    """In reset mode the request is read and the connection reset (RST, not FIN)."""
    proxy.set_mode("reset")
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        http.get(proxy.url + "/x")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"GET /raw HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            _read_all(sock)
    assert echo.received == []
    assert proxy.seen == {"reset": 2}


def test_slow_delays_each_answer(proxy: FaultProxy, echo: Echo, http: httpx.Client) -> None:
    """In slow mode the answer arrives intact, no sooner than the configured delay."""
    proxy.set_mode("slow", delay=0.3)
    started = time.monotonic()
    response = http.get(proxy.url + "/s")
    assert time.monotonic() - started >= 0.3
    assert (response.status_code, response.text) == (200, "GET /s ")
    assert proxy.seen == {"slow": 1}


def test_drip_relays_one_byte_at_a_time(proxy: FaultProxy, echo: Echo) -> None:
    """In drip mode the answer arrives intact, byte by byte, each read waiting ~delay."""
    proxy.set_mode("drip", delay=0.005)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"GET /d HTTP/1.1\r\nHost: x\r\n\r\n")
        reads = []
        while chunk := sock.recv(65536):
            reads.append(chunk)
    answer = b"".join(reads)
    assert answer.startswith(b"HTTP/1.") and answer.endswith(b"GET /d ")
    assert len(reads) > len(answer) // 2  # not one burst: (nearly) one byte per read
    assert proxy.seen == {"drip": 1}


def test_drip_defeats_a_per_read_timeout(proxy: FaultProxy, echo: Echo) -> None:
    """A client with a 0.5 s read timeout still waits far longer than 0.5 s in total."""
    proxy.set_mode("drip", delay=0.015)  # ~170 bytes: ~2.5 s, each gap far below 0.5 s
    started = time.monotonic()
    with httpx.Client(timeout=0.5) as client:
        response = client.get(proxy.url + "/long-enough")
    assert response.status_code == 200
    assert time.monotonic() - started > 1.0


def test_fail_next_fails_n_requests_then_passes(
    proxy: FaultProxy, echo: Echo, http: httpx.Client
) -> None:
    """fail_next(2, http500) fails exactly the next two requests; later ones pass."""
    proxy.fail_next(2, "http500")
    statuses = [http.get(proxy.url + f"/{i}").status_code for i in range(4)]
    assert statuses == [500, 500, 200, 200]
    assert echo.received == ["/2", "/3"]
    assert proxy.seen == {"http500": 2, "pass": 2}


def test_fail_next_with_reset(proxy: FaultProxy, echo: Echo, http: httpx.Client) -> None:
    """fail_next(1, reset) resets one request; the next one passes."""
    proxy.fail_next(1, "reset")
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        http.get(proxy.url + "/r")
    assert http.get(proxy.url + "/ok").status_code == 200
    assert proxy.seen == {"reset": 1, "pass": 1}


def test_unknown_modes_are_rejected(proxy: FaultProxy) -> None:
    """A typo in a mode or fault name raises instead of silently passing."""
    with pytest.raises(ValueError):
        proxy.set_mode("hnag")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        proxy.fail_next(1, "refuse")  # type: ignore[arg-type]


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
