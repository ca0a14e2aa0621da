"""The console's pure parts (command descriptions, message states, the chart), its ingest
endpoint, the dev entrypoint's request reporting, and `make dev`'s port and banner rules."""

from __future__ import annotations

import socket
import uuid

import httpx

from devstack import dev
from devstack.console.observer import make_app, redis_round_trip
from devstack.console.records import RequestRecord, describe_command
from devstack.console.sources import PendingMessage
from devstack.console.views import analytics_svg, message_rows
from tests.conftest import Devstack


def test_commands_are_described_by_name_and_key_never_value() -> None:
    """A command shows its name and first key; the value and script bodies are left out."""
    assert describe_command(["set", "order:1", "secret-value", "PX", "10"]) == "SET order:1"
    assert "local" not in describe_command(["EVAL", "local x = 1", "1", "rl:ip"])
    assert describe_command(["EVAL", "local x = 1", "1", "rl:ip"]) == "EVAL <script> rl:ip"
    assert describe_command(["PING"]) == "PING"


def test_a_redis_request_is_one_round_trip_of_its_commands() -> None:
    """A /pipeline body is one round trip of several commands; a single command is one."""
    trip = redis_round_trip("/pipeline", b'[["GET","a"],["SET","b","v"]]')
    assert (trip.mode, trip.commands) == ("pipeline", ["GET a", "SET b"])
    assert redis_round_trip("/", b'["INCR","c"]').commands == ["INCR c"]
    assert redis_round_trip("/multi-exec", b'[["DEL","d"]]').mode == "multi-exec"


def _record(started: int, status: int, message_id: str = "", retried: str = "") -> RequestRecord:
    return RequestRecord(
        id=uuid.uuid4().hex,
        method="POST",
        path="/api/jobs/send-confirmation",
        started_ms=started,
        status=status,
        qstash_message_id=message_id,
        qstash_retried=retried,
    )


def _pending(message_id: str, retried: int, in_flight: bool = False) -> PendingMessage:
    return PendingMessage(message_id, "http://x/job", "message", retried, 3, 5, in_flight, 0, 1)


def test_message_states_follow_attempts_store_and_dlq() -> None:
    """Delivered, retrying, delivering, waiting and dead-lettered come from the attempts the
    API saw, the QStash store and the DLQ."""
    attempts = {
        "m-ok": [_record(1, 200, "m-ok", "0")],
        "m-retry": [_record(2, 503, "m-retry", "0")],
        "m-dead": [_record(3, 503, "m-dead", str(n)) for n in range(4)],
    }
    pending = [_pending("m-retry", 1), _pending("m-busy", 0, True), _pending("m-new", 0)]
    rows = message_rows({}, attempts, pending, [{"messageId": "m-dead", "url": "u"}], {})
    states = {row.id: row.state for row in rows}
    assert states == {
        "m-ok": "delivered",
        "m-retry": "retrying",
        "m-busy": "delivering",
        "m-new": "waiting",
        "m-dead": "dead-lettered",
    }
    assert next(r for r in rows if r.id == "m-retry").next_attempt_ms == 5


def test_a_dead_message_left_the_dlq_by_retry_or_delete() -> None:
    """Once out of the DLQ, a dead message reads as retried (naming its new message) or
    deleted, and one gone some other way as failed with its last status."""
    attempts = {m: [_record(1, 503, m, "3")] for m in ("m-a", "m-b", "m-c")}
    attempts["m-new"] = [_record(2, 200, "m-new", "0")]
    rows = message_rows({}, attempts, [], [], {"m-new": "m-a"}, ["m-b"])
    by_id = {row.id: row for row in rows}
    assert by_id["m-a"].state == "dead-lettered, retried" and by_id["m-a"].retried_as == "m-new"
    assert by_id["m-new"].retry_of == "m-a" and by_id["m-new"].state == "delivered"
    assert by_id["m-b"].state == "dead-lettered, deleted"
    assert by_id["m-c"].state == "failed (503)"


def test_a_message_shows_the_qstash_log_in_time_order() -> None:
    """Where QStash offers its message log (`/v2/events`), a message lists its states oldest
    first; without one the row has no log."""
    events = [
        {"messageId": "m", "time": 3, "state": "DELIVERED"},
        {"messageId": "m", "time": 1, "state": "CREATED"},
        {"messageId": "other", "time": 2, "state": "CREATED"},
    ]
    attempts = {"m": [_record(1, 200, "m", "0")]}
    rows = message_rows({}, attempts, [], [], {}, (), events)
    assert next(r for r in rows if r.id == "m").log == ("CREATED", "DELIVERED")
    assert message_rows({}, attempts, [], [], {})[0].log == ()


def test_the_chart_counts_allowed_and_denied_requests() -> None:
    """Rate-limited requests count as allowed, 429s as denied, others not at all."""
    now = 1_000_000_000
    records = [_record(now - 1000, 201), _record(now - 2000, 429), _record(now - 500, 200)]
    records[0].ratelimit_remaining = "9"
    svg = analytics_svg(records, now)
    assert "allowed 1" in svg and "denied 1" in svg
    assert svg.count('class="allowed"') == 1 and svg.count('class="denied"') == 1


def test_the_console_refuses_a_bad_record_with_json(devstack: Devstack) -> None:
    """A body that is not a request record is a 400 JSON error, not a 500."""
    url = devstack.raw["console_url"] + "/console/api/requests"
    for body in (b"not json", b'{"method": "GET"}', b"[]"):
        answer = httpx.post(url, content=body, timeout=5)
        assert answer.status_code == 400, body
        assert answer.json()["error"] == "bad request record"


def test_the_console_refuses_foreign_hosts_and_cross_site_posts(devstack: Devstack) -> None:
    """A non-loopback Host (DNS rebinding) and a POST from another origin are 403 JSON; the
    console's own origin and loopback names are served."""
    console = devstack.raw["console_url"]
    port = console.rsplit(":", 1)[1]
    rebound = httpx.get(console + "/console/requests", headers={"Host": "evil.example"})
    assert rebound.status_code == 403 and "error" in rebound.json()
    assert httpx.get(
        console + "/console/requests", headers={"Host": f"localhost:{port}"}
    ).is_success
    delete = console + "/console/qstash/dlq/dlq_x/delete"
    cross = httpx.post(delete, headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and cross.json() == {"error": "cross-origin POST refused"}
    same = httpx.post(delete, headers={"Origin": console})
    assert same.status_code == 303


async def test_reported_requests_keep_no_query_string_or_token(devstack: Devstack) -> None:
    """The dev entrypoint reports each request to the console with its Redis round trips, and
    the record holds the path only: no query string, no token, no header value."""
    base = "http://testserver"
    env = {**dev.app_env(devstack.raw, base), "DEVSTACK_CONSOLE_URL": devstack.raw["console_url"]}
    token = f"secret-{uuid.uuid4().hex}"
    marker = f"/api/orders/ord_{uuid.uuid4().hex[:22]}"
    transport = httpx.ASGITransport(app=make_app(env))
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        answer = await client.get(f"{marker}?token={token}", headers={"x-secret": token})
    assert answer.status_code == 404
    listed = httpx.get(devstack.raw["console_url"] + "/console/api/requests", timeout=5)
    record = next(r for r in listed.json() if r["path"] == marker)
    assert record["status"] == 404 and record["redis"] and record["id"]
    assert token not in listed.text


def test_a_taken_api_port_is_refused_and_stable_ports_fall_back() -> None:
    """`make dev` refuses a port in use (naming PORT=), and a taken console port becomes 0."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        try:
            dev.check_api_port(port)
        except dev.PortTaken as exc:
            assert f"make dev PORT={port + 1}" in str(exc)
        else:
            raise AssertionError("a taken port was accepted")
        assert dev.stable_port(port) == 0


def test_the_banner_leads_with_the_console_and_varies_the_example() -> None:
    """The console is the banner's first line, the cron secret is named, and each banner's
    example order uses a fresh address and Idempotency-Key."""
    info = {
        "console_url": "http://127.0.0.1:8100",
        "email_inbox_url": "http://127.0.0.1:8125/",
        "redis_rest_url": "http://127.0.0.1:1",
        "redis_rest_token": "t",
        "qstash_url": "http://127.0.0.1:2",
    }
    first, second = dev.banner(info, "http://127.0.0.1:8000"), dev.banner(info, "x")
    assert first.strip().splitlines()[0].split()[:2] == ["Console", "http://127.0.0.1:8100/"]
    assert dev.DEV_CRON_SECRET in first
    emails = [b.split('"customer_email": "')[1].split('"')[0] for b in (first, second)]
    assert emails[0] != emails[1]
