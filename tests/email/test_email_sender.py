"""The sender's pure halves (request building, response parsing) and its error mapping."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web

from shared.errors import TransportError, TransportTimeout, UpstashError
from shared.http.httpx_transport import HttpxTransport
from shared.http.transport import HttpRequest, HttpResponse
from shared.jobs.email import (
    EmailError,
    EmailMessage,
    EmailSender,
    EmailSendError,
    build_send_request,
    parse_send_response,
)

KEY = "re_secret_key_123"
MESSAGE = EmailMessage(
    sender="Shop <orders@shop.example>",
    to="ann@example.com",
    subject="Order 42 confirmed",
    text="text body",
    html="<p>html body</p>",
)
REPO_ROOT = Path(__file__).resolve().parents[2]


class RecordingTransport:
    """A fake transport: records requests and answers a fixed response or raises."""

    def __init__(self, response: HttpResponse | None = None, error: Exception | None = None):
        self.requests: list[HttpRequest] = []
        self.response = response
        self.error = error

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response


def answer(status: int, body: object, headers: dict[str, str] | None = None) -> HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResponse(status=status, headers=headers or {}, body=raw)


def test_request_shape() -> None:
    """The request is Resend's: POST /emails, bearer key, idempotency key, JSON body."""
    request = build_send_request(
        MESSAGE, api_url="https://api.resend.com", api_key=KEY, idempotency_key="k1", timeout=3.0
    )
    assert request.method == "POST"
    assert request.url == "https://api.resend.com/emails"
    assert request.headers == {
        "Authorization": f"Bearer {KEY}",
        "Content-Type": "application/json",
        "Idempotency-Key": "k1",
    }
    assert request.timeout == 3.0
    assert json.loads(request.body) == {
        "from": "Shop <orders@shop.example>",
        "to": ["ann@example.com"],
        "subject": "Order 42 confirmed",
        "html": "<p>html body</p>",
        "text": "text body",
    }


@pytest.mark.parametrize("key", ["", "x" * 257, "line\nbreak"])
async def test_bad_idempotency_key_is_refused_before_io(key: str) -> None:
    """An idempotency key Resend would reject raises ValueError and sends nothing."""
    transport = RecordingTransport(answer(200, {"id": "e1"}))
    with pytest.raises(ValueError):
        await EmailSender(transport, api_key=KEY).send(MESSAGE, idempotency_key=key)
    assert transport.requests == []


def test_constructor_validates_and_hides_the_key() -> None:
    """Empty keys, bad URLs and non-positive deadlines are refused; repr never shows the key."""
    transport = RecordingTransport()
    with pytest.raises(ValueError):
        EmailSender(transport, api_key="  ")
    with pytest.raises(ValueError):
        EmailSender(transport, "ftp://mail.example", api_key=KEY)
    with pytest.raises(ValueError):
        EmailSender(transport, api_key=KEY, deadline=0)
    sender = EmailSender(transport, "http://127.0.0.1:9/", api_key=KEY)
    assert KEY not in repr(sender) and "http://127.0.0.1:9" in repr(sender)


def test_success_returns_the_id() -> None:
    """A 200 with an id returns that id."""
    assert parse_send_response(answer(200, {"id": "4ef9a417"})) == "4ef9a417"


@pytest.mark.parametrize(
    ("status", "body", "retryable", "code"),
    [
        (200, {"object": "email"}, True, None),
        (200, b"", True, None),
        (400, {"statusCode": 400, "name": "invalid_idempotency_key", "message": "x"}, False,
         "invalid_idempotency_key"),
        (401, {"statusCode": 401, "name": "missing_api_key", "message": "x"}, False,
         "missing_api_key"),
        (403, {"statusCode": 403, "name": "invalid_api_key", "message": "x"}, False,
         "invalid_api_key"),
        (409, {"statusCode": 409, "name": "invalid_idempotent_request", "message": "x"}, False,
         "invalid_idempotent_request"),
        (409, {"statusCode": 409, "name": "concurrent_idempotent_requests", "message": "x"}, True,
         "concurrent_idempotent_requests"),
        (422, {"statusCode": 422, "name": "validation_error", "message": "x"}, False,
         "validation_error"),
        (408, {"error": "timeout"}, True, None),
        (429, {"statusCode": 429, "name": "rate_limit_exceeded", "message": "x"}, True,
         "rate_limit_exceeded"),
        (500, {"statusCode": 500, "name": "application_error", "message": "x"}, True,
         "application_error"),
        (502, b"<html>Bad Gateway</html>", True, None),
    ],
)  # fmt: skip
def test_error_classification(status: int, body: object, retryable: bool, code: str | None) -> None:
    """5xx, 408, 429 and concurrent requests are retryable; other 4xx are permanent."""
    with pytest.raises(EmailSendError) as info:
        parse_send_response(answer(status, body))
    assert info.value.status == status
    assert info.value.retryable is retryable
    assert info.value.code == code
    assert isinstance(info.value, EmailError) and isinstance(info.value, UpstashError)


def test_retry_after_is_read() -> None:
    """A 429's Retry-After header (seconds) is kept on the error for the job handler."""
    with pytest.raises(EmailSendError) as info:
        parse_send_response(answer(429, {"name": "rate_limit_exceeded"}, {"retry-after": "2"}))
    assert info.value.retry_after == 2.0


async def test_messages_never_carry_the_key_or_the_recipient() -> None:
    """A provider message quoting the key or the recipient is redacted before it is raised."""
    body = {"name": "validation_error", "message": f"Ann@Example.com is not allowed with {KEY}"}
    transport = RecordingTransport(answer(403, body))
    with pytest.raises(EmailSendError) as info:
        await EmailSender(transport, api_key=KEY).send(MESSAGE, idempotency_key="k")
    text = f"{info.value} {info.value.message!r}"
    assert KEY not in text and "ann@example.com" not in text.lower()
    assert "[redacted]" in info.value.message


@pytest.mark.parametrize("error", [TransportError("POST failed"), TransportTimeout("timed out")])
async def test_transport_failures_are_retryable(error: TransportError) -> None:
    """No response (connection error or timeout) is a retryable EmailSendError with a cause."""
    transport = RecordingTransport(error=error)
    with pytest.raises(EmailSendError) as info:
        await EmailSender(transport, api_key=KEY).send(MESSAGE, idempotency_key="k")
    assert info.value.status is None and info.value.retryable
    assert info.value.__cause__ is error


def test_module_imports_without_httpx_or_pydantic() -> None:
    """shared.jobs.email imports with httpx and pydantic unavailable, as in Pyodide."""
    code = (
        "import sys; sys.modules['httpx'] = None; sys.modules['pydantic'] = None\n"
        "import shared.jobs.email as m; print(m.EmailSender.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "EmailSender"


class HangingTransport:
    """A fake transport that never answers and ignores the request's own timeout."""

    async def send(self, request: HttpRequest) -> HttpResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_the_deadline_bounds_the_whole_send() -> None:
    """A transport that never returns, whatever its own timeouts, ends in a retryable
    EmailSendError at the sender's total deadline."""
    sender = EmailSender(HangingTransport(), api_key=KEY, deadline=0.2)
    with pytest.raises(EmailSendError) as info:
        await asyncio.wait_for(sender.send(MESSAGE, idempotency_key="k"), timeout=10)
    assert info.value.status is None and info.value.retryable
    assert "deadline" in info.value.message


async def test_a_dripping_provider_is_cut_at_the_deadline() -> None:
    """A real provider stand-in that answers 200 and drips its body one byte every 0.2 s
    (no per-phase timeout ever fires) is cut at the 1 s deadline, well inside 10 s."""

    async def drips(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"content-length": "100000"})
        await response.prepare(request)
        while True:
            await response.write(b" ")
            await asyncio.sleep(0.2)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", drips)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    transport = HttpxTransport()
    sender = EmailSender(transport, f"http://127.0.0.1:{port}", api_key=KEY, deadline=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(EmailSendError) as info:
            await asyncio.wait_for(sender.send(MESSAGE, idempotency_key="k"), timeout=10)
    finally:
        await transport.aclose()
        await runner.cleanup()
    assert time.monotonic() - started < 10
    assert info.value.status is None and info.value.retryable
