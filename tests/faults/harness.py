"""The real app, served over loopback HTTP, with a fault proxy in front of each upstream.

    with FaultyApp.running(devstack_info) as app:
        app.qstash.set_mode("hang")          # FaultProxy in front of QStash
        response = app.create_order("a@example.com")
        app.calls                            # every HTTP call the app served, timed

The app is `build_app` + `AsgiAdapter` exactly as `vercel_api/index.py` builds it,
served by uvicorn in a thread (`tests.support.served`) on a pre-bound loopback socket, so
`APP_URL` is known up front and the devstack's QStash really delivers jobs to it. Its
environment is `devstack.dev.app_env` with three URLs replaced by proxies: the Redis REST
server, QStash and the email provider (the devstack's sink). A recording ASGI wrapper times
every call (until the answer starts, and until the call returns, background work
included: what a platform's duration limit counts), and a logging handler keeps
every record the process logs, tracebacks included.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from devstack.dev import DEV_CRON_SECRET, app_env
from shared.app.assembly import build_app
from shared.http.httpx_transport import HttpxTransport
from shared.routes import CONFIRMATION_JOB, FLUSH_OUTBOX
from shared.web.asgi import AsgiAdapter
from tests.faults.proxy import FaultProxy
from tests.support.served import loopback_socket, uvicorn_in_thread
from tests.support.waiting import wait_for

T = TypeVar("T")

PLATFORM_LIMIT_S = 30.0  # vercel.json maxDuration: the platform kills the call after this
JOB_PATH = CONFIRMATION_JOB
CRON_PATH = FLUSH_OUTBOX
LOGGERS = ("shared", "vercel_api", "uvicorn", "uvicorn.error", "asyncio")


@dataclass
class Call:
    """One HTTP call the app served."""

    method: str
    path: str
    started: float  # time.monotonic() at arrival
    status: int | None = None  # None: no answer started (the call crashed or was cut)
    answer_s: float | None = None  # arrival -> response start
    total_s: float | None = None  # arrival -> the ASGI call returned (background included)
    body: bytes = b""
    error: str | None = None  # an exception that escaped the ASGI app
    query: str = ""  # the query string: a test may tag its own calls with one

    @property
    def done(self) -> bool:
        return self.total_s is not None


class Recorder:
    """An ASGI wrapper recording each HTTP call as a `Call`."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        call = Call(scope["method"], scope["path"], time.monotonic())
        call.query = bytes(scope.get("query_string", b"")).decode("latin-1")
        with self._lock:
            self.calls.append(call)

        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                call.status = message["status"]
                call.answer_s = time.monotonic() - call.started
            elif message["type"] == "http.response.body" and len(call.body) < 65536:
                call.body += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except BaseException as exc:
            call.error = type(exc).__name__
            raise
        finally:
            call.total_s = time.monotonic() - call.started

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)


class LogKeeper(logging.Handler):
    """Keeps every formatted record (tracebacks included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        with self._guard:
            self.lines.append(text)

    def text(self) -> str:
        with self._guard:
            return "\n".join(self.lines)


def _endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return parts.hostname, parts.port


@dataclass
class FaultyApp:
    """The served app, its three proxies, and what it did."""

    url: str
    info: Mapping[str, Any]
    redis: FaultProxy
    qstash: FaultProxy
    email: FaultProxy
    recorder: Recorder
    logs: LogKeeper
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))
    env: Mapping[str, str] = field(default_factory=dict)  # what the app was built from

    @property
    def proxies(self) -> tuple[FaultProxy, FaultProxy, FaultProxy]:
        return (self.redis, self.qstash, self.email)

    @property
    def calls(self) -> list[Call]:
        return self.recorder.snapshot()

    # -- driving the app ------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, self.url + path, **kwargs)

    def create_order(self, email: str, *, timeout: float = 60.0) -> httpx.Response:
        body = {
            "customer_email": email,
            "currency": "EUR",
            "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}],
        }
        return self.request("POST", "/api/orders", json=body, timeout=timeout)

    def cron(self) -> httpx.Response:
        return self.cron_within(60.0)

    def cron_within(self, timeout: float) -> httpx.Response:
        """The Vercel Cron call of the outbox flush, with the dev cron secret."""
        return self.request(
            "GET",
            CRON_PATH,
            headers={"Authorization": f"Bearer {DEV_CRON_SECRET}"},
            timeout=timeout,
        )

    # -- reading the sink (directly, never through the proxy) -----------------------------

    def emails_for(self, order_id: str, to: str) -> list[dict[str, Any]]:
        """The emails the sink holds for `order_id` (its id in the subject, text or key)."""
        response = self.http.get(f"{self.info['email_api_url']}/emails", params={"to": to})
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return [
            e
            for e in data
            if order_id in str(e.get("subject"))
            or order_id in str(e.get("text"))
            or order_id in str(e.get("idempotency_key"))
        ]

    def dead_letters(self) -> list[dict[str, Any]]:
        """Messages the devstack's QStash dead-lettered (read directly)."""
        response = self.http.get(
            f"{self.info['qstash_url']}/v2/dlq",
            headers={"Authorization": f"Bearer {self.info['qstash_token']}"},
        )
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json().get("messages", [])
        return messages

    # -- what went wrong -------------------------------------------------------------------

    def calls_since(self, mark: float, path_prefix: str = "") -> list[Call]:
        return [c for c in self.calls if c.started >= mark and c.path.startswith(path_prefix)]

    def settle(self, mark: float, timeout: float = 45.0) -> list[Call]:
        """Waits (bounded) until every call that arrived since `mark` has returned."""
        wait_for(
            lambda: all(c.done for c in self.calls_since(mark)),
            "the app's calls to return",
            timeout=timeout,
        )
        return self.calls_since(mark)

    def reset(self) -> None:
        """Every proxy back to pass, pending failures dropped."""
        for proxy in self.proxies:
            with proxy._lock:
                proxy._pending.clear()
            proxy.set_mode("pass")

    @classmethod
    @contextmanager
    def running(cls, info: Mapping[str, Any], **overrides: str) -> Iterator[FaultyApp]:
        with ExitStack() as stack:
            redis = stack.enter_context(FaultProxy(_endpoint(str(info["redis_rest_url"]))))
            qstash = stack.enter_context(FaultProxy(_endpoint(str(info["qstash_url"]))))
            email = stack.enter_context(FaultProxy(_endpoint(str(info["email_api_url"]))))
            sock, url = loopback_socket()
            env = {
                **app_env(info, url),
                "UPSTASH_REDIS_REST_URL": redis.url,
                "QSTASH_URL": qstash.url,
                "EMAIL_API_URL": email.url,
                # Every test request comes from 127.0.0.1: the per-client limit is not
                # what this layer tests (the per-recipient email budget stays default).
                "RATE_LIMIT": "100000/10s",
                **overrides,
            }
            transport = HttpxTransport()
            recorder = Recorder(AsgiAdapter(lambda: build_app(env, transport=transport)))
            logs = LogKeeper()
            stack.enter_context(_kept_logs(logs))
            stack.enter_context(
                uvicorn_in_thread(recorder, sock, name="faulty-app", after=transport.aclose)
            )
            # Stopped before the server: calls still waiting on an upstream end at once.
            stack.callback(lambda: [proxy.stop() for proxy in (redis, qstash, email)])
            app = cls(url, info, redis, qstash, email, recorder, logs, env=env)
            stack.callback(app.http.close)
            stack.callback(app.reset)  # release hung connections before the server stops
            yield app


@contextmanager
def _kept_logs(keeper: LogKeeper) -> Iterator[None]:
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    root.addHandler(keeper)
    try:
        yield
    finally:
        root.removeHandler(keeper)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
