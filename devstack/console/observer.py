"""The dev-only entrypoint `make dev` serves: the Vercel ASGI app, observed for the console.

    uvicorn devstack.console.observer:app      (DEVSTACK_CONSOLE_URL=http://127.0.0.1:8100)

It builds exactly what `vercel_api.index` builds (`build_app(os.environ, transport=...)`)
with two wrappers that live here, in devstack, and nowhere in `shared/`:

- `ObservingTransport` wraps the app's `HttpxTransport`: each call to the Redis REST URL is
  one round trip (its command names and first keys are noted, never values), each QStash
  publish is noted with its message id, each email send with its status;
- `ObservedApp` wraps the ASGI app: it opens a record per request (a context variable, so
  the background work the app awaits after answering, e.g. the outbox flush, is counted
  too), notes status, `X-Cache`, `X-RateLimit-Remaining`, the QStash delivery headers and
  the durations, and posts the record to the console when the request is done.

Production never imports this module: Vercel serves `vercel_api.index:app`, the Worker
`worker/entry.py`. When `DEVSTACK_CONSOLE_URL` is unset nothing is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from devstack.console.records import Publish, RequestRecord, RoundTrip, describe_command, excerpt
from shared.app.assembly import build_app
from shared.http.httpx_transport import HttpxTransport
from shared.http.transport import HttpRequest, HttpResponse, Transport
from shared.web.asgi import AsgiAdapter, Receive, Scope, Send

log = logging.getLogger(__name__)

INGEST_PATH = "/console/api/requests"
_current: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar(
    "devstack_console_record", default=None
)


def _base(url: str | None) -> str:
    return (url or "").rstrip("/")


def redis_round_trip(path: str, body: bytes) -> RoundTrip:
    """What one Redis REST request carried: its mode and command descriptions."""
    mode = {"/pipeline": "pipeline", "/multi-exec": "multi-exec"}.get(path.rstrip("/"), "single")
    commands: list[str] = []
    try:
        data: Any = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, list) and data and all(isinstance(c, list) for c in data):
        commands = [describe_command(c) for c in data]
    elif isinstance(data, list):
        commands = [describe_command(data)]
    else:  # path-style command: /get/key
        commands = [describe_command(p for p in path.strip("/").split("/") if p)]
    return RoundTrip(mode=mode, commands=commands)


class ObservingTransport:
    """A `Transport` that notes Redis, QStash and email calls on the current record."""

    def __init__(self, inner: Transport, env: Mapping[str, str]) -> None:
        self.inner = inner
        self.redis_url = _base(env.get("UPSTASH_REDIS_REST_URL"))
        self.qstash_url = _base(env.get("QSTASH_URL"))
        self.email_url = _base(env.get("EMAIL_API_URL"))

    async def send(self, request: HttpRequest) -> HttpResponse:
        record = _current.get()
        if record is None:
            return await self.inner.send(request)
        started = time.perf_counter()
        trip: RoundTrip | None = None
        if self.redis_url and request.url.startswith(self.redis_url):
            trip = redis_round_trip(urlsplit(request.url).path, request.body)
            record.redis.append(trip)
        try:
            response = await self.inner.send(request)
        except Exception:
            self._note_failure(record, request)
            raise
        if trip is not None:
            trip.status = response.status
            trip.ms = round((time.perf_counter() - started) * 1000, 1)
        elif self.qstash_url and request.url.startswith(self.qstash_url):
            self._note_publish(record, request, response)
        elif self.email_url and request.url.startswith(self.email_url):
            record.emails.append(response.status)
        return response

    async def aclose(self) -> None:
        """Closes the wrapped transport (the clients call `aclose` when it has one)."""
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()

    def _note_failure(self, record: RequestRecord, request: HttpRequest) -> None:
        if self.qstash_url and request.url.startswith(self.qstash_url):
            record.publishes.append(Publish(destination=_destination(request.url), status=0))
        elif self.email_url and request.url.startswith(self.email_url):
            record.emails.append(0)

    def _note_publish(
        self, record: RequestRecord, request: HttpRequest, response: HttpResponse
    ) -> None:
        path = urlsplit(request.url).path
        if not path.startswith(("/v2/publish/", "/v2/batch", "/v2/enqueue/")):
            return
        try:
            answer: Any = json.loads(response.body)
        except ValueError:
            answer = None
        answers = answer if isinstance(answer, list) else [answer]
        for item in answers:
            message_id = item.get("messageId", "") if isinstance(item, dict) else ""
            record.publishes.append(
                Publish(_destination(request.url), response.status, str(message_id))
            )


def _destination(url: str) -> str:
    path = urlsplit(url).path
    for prefix in ("/v2/publish/", "/v2/enqueue/"):
        if path.startswith(prefix):
            return urlsplit(path[len(prefix) :]).path or path[len(prefix) :]
    return path


class ObservedApp:
    """ASGI wrapper: one `RequestRecord` per HTTP request, posted to the console."""

    def __init__(self, inner: Any, console_url: str | None) -> None:
        self.inner = inner
        self.console_url = _base(console_url)
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.console_url:
            await self.inner(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        record = RequestRecord(
            id="",
            method=str(scope["method"]).upper(),
            path=str(scope.get("path") or "/"),  # never the query: it may carry a token
            started_ms=int(time.time() * 1000),
            qstash_message_id=headers.get("upstash-message-id", ""),
            qstash_retried=headers.get("upstash-retried", ""),
        )
        started = time.perf_counter()
        body_parts: list[bytes] = []

        async def observe(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                record.status = int(message["status"])
                answer = {
                    k.decode("latin-1").lower(): v.decode("latin-1")
                    for k, v in message.get("headers", [])
                }
                record.id = answer.get("x-request-id", "")
                record.cache = answer.get("x-cache", "")
                record.ratelimit_remaining = answer.get("x-ratelimit-remaining", "")
            elif message["type"] == "http.response.body":
                body_parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    record.duration_ms = round((time.perf_counter() - started) * 1000, 1)
            await send(message)

        token = _current.set(record)
        try:
            await self.inner(scope, receive, observe)
        finally:
            _current.reset(token)
            record.total_ms = round((time.perf_counter() - started) * 1000, 1)
            if record.qstash_message_id or record.status >= 400:
                record.excerpt = excerpt(b"".join(body_parts))
            await self._report(record)

    async def _report(self, record: RequestRecord) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=2.0)
        with contextlib.suppress(httpx.HTTPError, asyncio.TimeoutError):
            await self._client.post(
                self.console_url + INGEST_PATH,
                content=record.to_json(),
                headers={"content-type": "application/json"},
            )


def make_app(env: Mapping[str, str]) -> ObservedApp:
    """The observed dev app over `env` (what `make dev` serves)."""
    transport = ObservingTransport(HttpxTransport(), env)
    adapter = AsgiAdapter(lambda: build_app(env, transport=transport))
    return ObservedApp(adapter, env.get("DEVSTACK_CONSOLE_URL"))


logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)
app = make_app(os.environ)
