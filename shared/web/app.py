"""The app: request id, structured log line, error mapping, middleware, router.

    app = App(router, middleware=[rate_limit_middleware(...)], error_reporter=report)
    response = await app.handle(request)

`handle` never raises: every failure becomes JSON `{"error", "detail"?}` with the
right status, in one place (`shared.web.errors.response_for`). Headers past
`max_header_fields` fields or `max_header_bytes` bytes answer 431 before any
middleware runs. The error reporter gets an `ErrorReport` for every 5xx answer
and for every failed job delivery (a 4xx/5xx answer on one of `job_paths`), with
the request id; failures anyone can cause without credentials (a forged
signature's 401, 405, 431..., or an `HttpError(report_throttled=True)` such as an
unconfigured secret's 503) and upstream outages (the 503 of Redis, QStash or the network
failing: `shared.web.errors.is_upstream_outage`) go through `ReportThrottle`: at most one
report per path (or message, or error type) and status a minute, carrying the count it
stood for. A bug (any other exception, a 500) is reported every time. The first
middleware is the outermost.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from shared.web.errors import error_response, is_upstream_outage, response_for
from shared.web.http import HttpError, Request, Response
from shared.web.reporting import ErrorReport, ErrorReporter, ReportThrottle
from shared.web.router import Handler, Router

log = logging.getLogger("app.request")

Middleware = Callable[[Request, Handler], Awaitable[Response]]
# Methods the app builds a chain for up front (any other method takes the full chain).
CHAIN_METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True, slots=True)
class MethodScoped:
    """A middleware that acts on `methods` only and passes every other request through:
    the app leaves it out of the other methods' chains (a GET skips the body and key checks
    of `POST /api/orders` altogether, not layer by layer)."""

    middleware: Middleware
    methods: frozenset[str]

    async def __call__(self, request: Request, call_next: Handler) -> Response:
        return await self.middleware(request, call_next)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
MAX_HEADER_FIELDS = 100
MAX_HEADER_BYTES = 32 * 1024
# Job-path answers given before the caller is authenticated: anyone can cause them, so they
# are throttled instead of reported one by one.
UNAUTHENTICATED_STATUSES = frozenset({401, 403, 405, 413, 415, 431})


# What escaped any layer of the request being handled (mapped further out), for the report.
_FAILURES: ContextVar[list[BaseException] | None] = ContextVar("app_failures", default=None)


def new_request_id() -> str:
    """32 random hex digits (a UUID's worth of randomness without building a `UUID`)."""
    return os.urandom(16).hex()


def request_id_for(request: Request) -> str:
    """The caller's X-Request-ID when it is sane, else a fresh random one."""
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else new_request_id()


class App:
    def __init__(
        self,
        router: Router,
        *,
        middleware: Sequence[Middleware] = (),
        error_reporter: ErrorReporter | None = None,
        job_paths: Collection[str] = (),
        report_throttle: ReportThrottle | None = None,
        max_header_fields: int = MAX_HEADER_FIELDS,
        max_header_bytes: int = MAX_HEADER_BYTES,
    ) -> None:
        self.router = router
        self._middleware = list(middleware)
        self._reporter = error_reporter
        self._job_paths = frozenset(job_paths)
        self._throttle = report_throttle or ReportThrottle()
        self._max_header_fields = max_header_fields
        self._max_header_bytes = max_header_bytes
        # Built once per method: each layer is one closure; the failures it records go to
        # the list of the request being handled (a context variable).
        self._handler = self._chain(None)
        self._chains = {method: self._chain(method) for method in CHAIN_METHODS}

    def _chain(self, method: str | None) -> Handler:
        """The middleware chain for `method` (None: every middleware, for any method)."""
        handler: Handler = _capturing(self.router.dispatch)
        for outer in reversed(self._middleware):
            if isinstance(outer, MethodScoped):
                if method is not None and method not in outer.methods:
                    continue
                outer = outer.middleware
            handler = _layer(outer, handler)
        return handler

    async def handle(self, request: Request) -> Response:
        if not request.request_id:
            request = request.evolve(request_id=request_id_for(request))
        started = time.perf_counter()
        failures: list[BaseException] = []  # what escaped any layer (mapped further out)
        token = _FAILURES.set(failures)
        try:
            response = await self._answer(request)
        finally:
            _FAILURES.reset(token)
        response.headers["x-request-id"] = request.request_id
        if self._reporter is not None and self._should_report(request, response):
            self._report(request, response, failures[-1] if failures else None)
        if log.isEnabledFor(logging.WARNING if response.status >= 500 else logging.INFO):
            _log_request(request, response, time.perf_counter() - started)
        return response

    async def _answer(self, request: Request) -> Response:
        if self._headers_too_large(request):
            response = error_response(
                431,
                "Request headers too large",
                {"max_fields": self._max_header_fields, "max_bytes": self._max_header_bytes},
            )
        else:
            try:
                handler = self._chains.get(request.method, self._handler)
                response = await handler(request)
            except Exception as exc:
                response = response_for(exc, request.request_id)
        return response

    def _headers_too_large(self, request: Request) -> bool:
        headers = request.headers
        return (
            headers.field_count > self._max_header_fields
            or headers.byte_size > self._max_header_bytes
        )

    def _should_report(self, request: Request, response: Response) -> bool:
        if response.status >= 500:
            return True
        return response.status >= 400 and request.path in self._job_paths

    def _report(self, request: Request, response: Response, failure: BaseException | None) -> None:
        assert self._reporter is not None
        suppressed = 0
        throttle_key = _throttle_key(request, response, failure, self._job_paths)
        if throttle_key is not None:
            admitted = self._throttle.admit(throttle_key, response.status)
            if admitted is None:
                return
            suppressed = admitted
        message = _public_message(response)
        if suppressed:
            message += f" (+{suppressed} more since the last report)"
        report = ErrorReport(
            request_id=request.request_id,
            status=response.status,
            path=request.path,
            error_type=type(failure).__name__ if failure is not None else "HttpError",
            message=message,
            suppressed=suppressed,
        )
        try:
            self._reporter(report)
        except Exception:  # a broken reporter must not break the response
            log.exception("error reporter failed (request %s)", request.request_id)


def _throttle_key(
    request: Request,
    response: Response,
    failure: BaseException | None,
    job_paths: Collection[str],
) -> str | None:
    """The throttle's key for a failure anyone can cause or an upstream outage (None: report
    each one). Keys come from code (fixed job paths, the messages of errors marked
    `report_throttled`, exception class names), never from the request alone, so the
    throttle's memory stays bounded."""
    if request.path in job_paths and response.status in UNAUTHENTICATED_STATUSES:
        return request.path
    if isinstance(failure, HttpError) and failure.report_throttled:
        return f"error:{failure.message}"
    if response.status >= 500 and is_upstream_outage(failure):
        return f"upstream:{type(failure).__name__}"
    return None


def record_failure(exc: BaseException) -> None:
    """Notes a failure of the request being handled (once), so its report names the type
    (and throttles it when it is an upstream outage) even when it never reaches the app:
    an exception escaping a layer that an outer middleware turns into a response, or one a
    handler answers itself (the health check's 503 "degraded")."""
    failures = _FAILURES.get()
    if failures is not None and (not failures or failures[-1] is not exc):
        failures.append(exc)


def _layer(middleware: Middleware, inner: Handler) -> Handler:
    async def call(request: Request) -> Response:
        try:
            return await middleware(request, inner)
        except Exception as exc:
            record_failure(exc)
            raise

    return call


def _capturing(handler: Handler) -> Handler:
    async def call(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            record_failure(exc)
            raise

    return call


def _public_message(response: Response) -> str:
    """The `error` text the client was given (never the body of a success)."""
    try:
        data = json.loads(response.body) if response.body else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])[:200]
    return f"HTTP {response.status}"


def _log_request(request: Request, response: Response, seconds: float) -> None:
    # Path only (the query may carry an access token), no client address or body.
    record = {
        "request_id": request.request_id,
        "method": request.method,
        "path": request.path,
        "status": response.status,
        "ms": round(seconds * 1000, 1),
    }
    if "x-cache" in response.headers:
        record["cache"] = response.headers["x-cache"]
    level = logging.WARNING if response.status >= 500 else logging.INFO
    log.log(level, "%s", json.dumps(record, separators=(",", ":")))  # the caller checked level
