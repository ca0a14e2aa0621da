"""Input bounds and redaction as pure units: JSON depth before parsing, header bounds (431),
JSON-only bodies (415), error-report throttling, and reprs that hide secrets."""

from __future__ import annotations

import json
import logging

import pytest

from shared.app.assembly import build_app
from shared.http.transport import HttpRequest, HttpResponse
from shared.jobs.email_sender import EmailSender
from shared.qstash import QStash, Receiver
from shared.qstash.publish import BatchMessage, PublishOptions
from shared.redis import Redis
from shared.web.app import MAX_HEADER_BYTES, MAX_HEADER_FIELDS, App
from shared.web.content_type import is_json_media_type, json_body_middleware
from shared.web.errors import HttpError
from shared.web.http import (
    MAX_JSON_DEPTH,
    Headers,
    JsonTooDeep,
    Request,
    Response,
    json_depth,
    loads_bounded,
)
from shared.web.reporting import ErrorReport, ReportThrottle
from shared.web.router import Router

SECRET = "s3cret-VALUE-9f8e7d"
JOB = "/api/jobs/send-confirmation"


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('{"a": "[[[[[[", "b": "}}}"}', 1),
        ('["\\"[[[", ["\\\\"]]', 2),
        ("[" * 5000, 5000),
        ('"unterminated \\" [[[[', 0),  # the parser fails at the string: never descends
        ("]]]][", 0),
    ],
)
def test_json_depth_counts_brackets_outside_strings(text: str, depth: int) -> None:
    """The pre-scan counts nesting outside strings, escapes included, without recursion."""
    assert json_depth(text) == depth


def test_loads_bounded_refuses_deep_documents_before_parsing() -> None:
    """A 10 KB `[[[[` body is JsonTooDeep, not RecursionError; a shallow one parses."""
    with pytest.raises(JsonTooDeep):
        loads_bounded(b"[" * 10_000 + b"]" * 10_000)
    with pytest.raises(JsonTooDeep):
        loads_bounded("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    nested = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert loads_bounded(nested) == json.loads(nested)
    with pytest.raises(ValueError):
        loads_bounded(b"\xff{}")


@pytest.mark.parametrize("body", [b"[" * 10_000, b'{"a":' * 3000, b"[" * 10_000 + b"]" * 10_000])
def test_request_json_answers_400_for_deep_nesting(body: bytes) -> None:
    """`Request.json()` turns deep nesting into HttpError(400), never RecursionError."""
    with pytest.raises(HttpError) as info:
        Request("POST", "/api/orders", body=body).json()
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON ; Charset=UTF-8", True),
        ("  application/json", True),
        ("text/plain", False),
        ("text/plain; application/json", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        ("text/xml", False),
        ("application/jsonp", False),
        ("", False),
        (None, False),
    ],
)
def test_json_media_type(value: str | None, ok: bool) -> None:
    """Only application/json (any case, any parameters) counts as a JSON body."""
    assert is_json_media_type(value) is ok


async def _ok(request: Request) -> Response:
    return Response.json({"ok": True})


async def test_json_body_middleware_scope() -> None:
    """415 for a non-JSON body on a known POST route; exempt paths, empty bodies, GETs and
    unknown routes pass through to the next layer."""

    def methods(path: str) -> list[str]:
        return {"/api/orders": ["POST"], JOB: ["POST"]}.get(path, [])

    middleware = json_body_middleware(allowed_methods=methods, exempt={JOB})

    def req(path: str, method: str = "POST", body: bytes = b"x", ctype: str = "") -> Request:
        headers = Headers({"content-type": ctype} if ctype else {})
        return Request(method, path, headers=headers, body=body)

    with pytest.raises(HttpError) as info:
        await middleware(req("/api/orders", ctype="text/plain"), _ok)
    assert info.value.status == 415
    assert info.value.message == "Content-Type must be application/json"
    with pytest.raises(HttpError):
        await middleware(req("/api/orders"), _ok)  # no Content-Type at all
    passing = [
        req("/api/orders", ctype="application/json; charset=utf-8"),
        req(JOB, ctype="text/plain"),
        req("/api/orders", body=b"", ctype="text/plain"),
        req("/api/orders", method="GET", ctype="text/plain"),
        req("/api/unknown", ctype="text/plain"),
    ]
    for request in passing:
        assert (await middleware(request, _ok)).status == 200


def _app(reports: list[ErrorReport], throttle: ReportThrottle | None = None) -> App:
    router = Router()

    @router.route("POST", JOB)
    async def job(request: Request) -> Response:
        if request.headers.get("upstash-signature") != "good":
            raise HttpError(401, "Invalid signature")
        raise HttpError(489, "Order no longer exists")

    @router.route("GET", "/api/ping")
    async def ping(request: Request) -> Response:
        return Response.json({"ok": True})

    return App(router, error_reporter=reports.append, job_paths={JOB}, report_throttle=throttle)


async def test_oversized_headers_answer_431() -> None:
    """Too many header fields or too many header bytes answer 431 JSON before any handler."""
    app = _app([])
    many = Headers([(f"x-h{i}", "1") for i in range(MAX_HEADER_FIELDS + 1)])
    big = Headers({"x-big": "a" * MAX_HEADER_BYTES})
    fine = Headers([(f"x-h{i}", "1") for i in range(20)])
    for headers in (many, big):
        response = await app.handle(Request("GET", "/api/ping", headers=headers))
        assert response.status == 431
        assert json.loads(response.body)["error"] == "Request headers too large"
    assert (await app.handle(Request("GET", "/api/ping", headers=fine))).status == 200


async def test_unauthenticated_job_failures_are_throttled() -> None:
    """401s on a job path: one report per minute per path and status, the next one carries the
    count; authenticated failures (489) are still reported one by one."""
    now = [1000.0]
    reports: list[ErrorReport] = []
    app = _app(reports, ReportThrottle(60.0, clock=lambda: now[0]))
    forged = Request("POST", JOB, headers=Headers({"upstash-signature": "x.y.z"}), body=b"{}")
    for _ in range(100):
        assert (await app.handle(forged)).status == 401
    assert [(r.status, r.suppressed) for r in reports] == [(401, 0)]
    now[0] += 59.0
    await app.handle(forged)
    assert len(reports) == 1
    now[0] += 1.0
    await app.handle(forged)
    assert [(r.status, r.suppressed) for r in reports] == [(401, 0), (401, 100)]
    assert reports[1].message == "Invalid signature (+100 more since the last report)"
    signed = Request("POST", JOB, headers=Headers({"upstash-signature": "good"}), body=b"{}")
    for _ in range(3):
        assert (await app.handle(signed)).status == 489
    assert [r.status for r in reports[2:]] == [489, 489, 489]


def test_report_throttle_rejects_a_bad_interval() -> None:
    """A non-positive interval is a programming error."""
    with pytest.raises(ValueError):
        ReportThrottle(0)


def test_http_request_and_response_reprs_hide_secrets() -> None:
    """HttpRequest/HttpResponse reprs show header names and body lengths, never values."""
    request = HttpRequest(
        "POST",
        f"https://user:{SECRET}@qstash.example/v2/publish/https://app.example/api/jobs/x"
        f"?token={SECRET}",
        headers={
            "Authorization": f"Bearer {SECRET}",
            "x-vercel-protection-bypass": SECRET,
            "Upstash-Forward-X-Vercel-Protection-Bypass": SECRET,
        },
        body=f'{{"password": "{SECRET}"}}'.encode(),
    )
    text = repr(request)
    assert SECRET not in text
    assert "Authorization" in text and "qstash.example/v2/publish" in text
    response = HttpResponse(200, {"set-cookie": SECRET}, SECRET.encode())
    assert SECRET not in repr(response) and "set-cookie" in repr(response)


def test_clients_holding_secrets_hide_them_in_repr(caplog: pytest.LogCaptureFixture) -> None:
    """QStash, Redis, EmailSender, Receiver and publish options never print their secrets."""
    key = "sig_" + SECRET
    objects: list[object] = [
        QStash(SECRET, url="http://127.0.0.1:9"),
        Redis("http://127.0.0.1:9", SECRET),
        EmailSender(None, "http://127.0.0.1:9/emails", api_key=SECRET),  # type: ignore[arg-type]
        Receiver(key, key),
        PublishOptions(headers={"x-vercel-protection-bypass": SECRET}),
        BatchMessage("https://app.example/x", b"{}", PublishOptions(headers={"a": SECRET})),
    ]
    for obj in objects:
        assert SECRET not in repr(obj), type(obj).__name__
    logging.getLogger("test").warning("%r", objects)
    assert SECRET not in caplog.text


class _NoTransport:
    async def send(self, request: HttpRequest) -> HttpResponse:
        raise AssertionError("no I/O expected")


def test_assembled_app_repr_hides_every_secret() -> None:
    """The whole bundle (settings, clients, services) prints none of the configured secrets."""
    secrets = {
        "UPSTASH_REDIS_REST_TOKEN": "redis-token-" + SECRET,
        "QSTASH_TOKEN": "qstash-token-" + SECRET,
        "QSTASH_CURRENT_SIGNING_KEY": "sig_current" + SECRET,
        "QSTASH_NEXT_SIGNING_KEY": "sig_next" + SECRET,
        "RESEND_API_KEY": "re_" + SECRET,
        "CRON_SECRET": "cron-" + SECRET,
        "API_KEYS": "api-key-" + SECRET,
        "VERCEL_AUTOMATION_BYPASS_SECRET": "bypass-" + SECRET,
        "ORDER_TOKEN_SECRET": "order-token-secret-" + SECRET + "-0123456789abcdef",
        "ORDER_TOKEN_SECRET_NEXT": "order-token-next-" + SECRET + "-0123456789abcdef",
    }
    env = {
        "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:9",
        "EMAIL_API_URL": "http://127.0.0.1:9/emails",
        "EMAIL_FROM": "Orders <orders@example.com>",
        "APP_URL": "https://app.example.com",
        **secrets,
    }
    bundle = build_app(env, transport=_NoTransport())
    text = repr(bundle) + repr(bundle.settings) + repr(bundle.services)
    assert "redis=" in text and "qstash=" in text
    assert SECRET not in text
