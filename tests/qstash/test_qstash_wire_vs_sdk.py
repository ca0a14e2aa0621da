"""Our pure request builders against what the official `qstash` SDK (unchanged) actually
sends for the same call, captured by a loopback server: method, path, query, `Upstash-*`
headers and body agree, so "the SDKs' wire format" is checked against the SDK itself."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import qstash as official
from qstash.log import LogState

from shared.http.transport import HttpRequest
from shared.qstash import FlowControl, PublishOptions, manage
from shared.qstash.publish import build_publish_request

TOKEN = "wire-token"
URL = "https://app.example.com/api/jobs/x"
Wire = tuple[str, str, tuple[tuple[str, str], ...], dict[str, str], bytes]


def wire(method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes) -> Wire:
    """A request in the compared shape: method, path, sorted query, the `Upstash-*` headers
    and the content type (names lowercased), body."""
    split = urlsplit(target)
    kept = {
        k.lower(): v
        for k, v in headers
        if k.lower().startswith("upstash-") or k.lower() == "content-type"
    }
    return method, split.path, tuple(sorted(parse_qsl(split.query))), kept, body


class Capture(BaseHTTPRequestHandler):
    """Records each request and answers a JSON shape the SDK's parsers accept."""

    seen: list[Wire] = []

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        Capture.seen.append(wire(self.command, self.path, self.headers.items(), body))
        answer: object = {"messageId": "m", "scheduleId": "s", "messages": [], "events": []}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _handle

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def capture() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def ours(request: HttpRequest) -> Wire:
    """Our builder's request in the captured shape."""
    return wire(request.method, request.url, request.headers.items(), request.body or b"")


def sdk_call(base: str, call: Callable[[official.QStash], object]) -> Wire:
    """What the SDK sent for `call` (its parsing of our stub answer is not under test)."""
    Capture.seen.clear()
    client = official.QStash(TOKEN, base_url=base, retry=False)
    with contextlib.suppress(Exception):  # the stub answer may not fit every parser
        call(client)
    assert len(Capture.seen) == 1, Capture.seen
    return Capture.seen[0]


CASES: list[tuple[str, Callable[[official.QStash], object], Callable[[str], HttpRequest]]] = [
    (
        "publish with flow control",
        lambda c: c.message.publish(
            url=URL,
            body="x",
            retries=1,
            delay="5s",
            flow_control={"key": "email", "rate": 5, "period": "10s", "parallelism": 3},
            label="l1",
        ),
        lambda b: build_publish_request(
            b,
            TOKEN,
            URL,
            b"x",
            PublishOptions(
                retries=1,
                delay="5s",
                flow_control=FlowControl("email", rate=5, period="10s", parallelism=3),
                label="l1",
            ),
        ),
    ),
    (
        "schedule create",
        lambda c: c.schedule.create(
            destination=URL,
            cron="*/5 * * * *",
            body="x",
            method="GET",
            retries=2,
            schedule_id="flush-outbox",
            flow_control={"key": "k", "parallelism": 1},
        ),
        lambda b: manage.build_create_schedule(
            b,
            TOKEN,
            URL,
            "*/5 * * * *",
            b"x",
            PublishOptions(method="GET", retries=2, flow_control=FlowControl("k", parallelism=1)),
            schedule_id="flush-outbox",
        ),
    ),
    (
        "schedule pause",
        lambda c: c.schedule.pause("s1"),
        lambda b: manage.build_pause_schedule(b, TOKEN, "s1"),
    ),
    (
        "schedule resume",
        lambda c: c.schedule.resume("s1"),
        lambda b: manage.build_resume_schedule(b, TOKEN, "s1"),
    ),
    (
        "schedule delete",
        lambda c: c.schedule.delete("s1"),
        lambda b: manage.build_delete_schedule(b, TOKEN, "s1"),
    ),
    (
        "url group upsert",
        lambda c: c.url_group.upsert_endpoints(
            "g1", [{"url": URL}, {"url": URL + "/2", "name": "two"}]
        ),
        lambda b: manage.build_upsert_endpoints(
            b, TOKEN, "g1", [URL, manage.Endpoint(URL + "/2", "two")]
        ),
    ),
    (
        "url group remove",
        lambda c: c.url_group.remove_endpoints("g1", [{"name": "two"}]),
        lambda b: manage.build_remove_endpoints(b, TOKEN, "g1", [manage.Endpoint("", "two")]),
    ),
    (
        "message get",
        lambda c: c.message.get("msg_1"),
        lambda b: manage.build_get_message(b, TOKEN, "msg_1"),
    ),
    (
        "message cancel",
        lambda c: c.message.cancel("msg_1"),
        lambda b: manage.build_cancel_message(b, TOKEN, "msg_1"),
    ),
    (
        "dlq list",
        lambda c: c.dlq.list(cursor="7", count=10, filter={"url": URL, "response_status": 500}),
        lambda b: manage.build_list_dlq(
            b, TOKEN, cursor="7", count=10, filters={"url": URL, "response_status": 500}
        ),
    ),
    (
        "dlq delete",
        lambda c: c.dlq.delete("dlq_1"),
        lambda b: manage.build_delete_dlq(b, TOKEN, "dlq_1"),
    ),
    (
        "logs",
        lambda c: c.log.list(filter={"message_id": "msg_1", "state": LogState.FAILED}, count=5),
        lambda b: manage.build_list_events(b, TOKEN, message_id="msg_1", state="FAILED", count=5),
    ),
    (
        "flow control info",
        lambda c: c.flow_control.get("email"),
        lambda b: manage.build_get_flow_control(b, TOKEN, "email"),
    ),
]


@pytest.mark.parametrize(("name", "sdk", "build"), CASES, ids=[c[0] for c in CASES])
def test_our_builders_send_what_the_official_sdk_sends(
    capture: str,
    name: str,
    sdk: Callable[[official.QStash], object],
    build: Callable[[str], HttpRequest],
) -> None:
    """Method, path, query, Upstash-* headers and body equal the SDK's for the same call."""
    theirs = sdk_call(capture, sdk)
    method, path, query, headers, body = ours(build(capture))
    t_method, t_path, t_query, t_headers, t_body = theirs
    assert (method, path, query) == (t_method, t_path, t_query), name
    assert headers == t_headers, name
    if body or t_body:
        try:
            assert json.loads(body) == json.loads(t_body), name
        except ValueError:
            assert body == t_body, name
