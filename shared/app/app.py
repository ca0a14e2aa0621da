"""The app: request id, structured log line, error mapping, middleware, router.

    app = App(router, middleware=[rate_limit_middleware(...)])
    response = await app.handle(request)

`handle` never raises: every failure becomes JSON `{"error", "detail"?}` with the
right status, in one place (`shared.app.errors.response_for`).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from shared.app.errors import response_for
from shared.app.http import Request, Response
from shared.app.router import Handler, Router

log = logging.getLogger("app.request")

Middleware = Callable[[Request, Handler], Awaitable[Response]]
ErrorHook = Callable[[BaseException | None, Request, Response], None]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def request_id_for(request: Request) -> str:
    """The caller's X-Request-ID when it is sane, else a fresh random one."""
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


class App:
    def __init__(
        self,
        router: Router,
        *,
        middleware: Sequence[Middleware] = (),
        on_server_error: ErrorHook | None = None,
    ) -> None:
        self.router = router
        self._middleware = list(middleware)
        self._on_server_error = on_server_error

    def _chain(self) -> Handler:
        handler: Handler = self.router.dispatch
        for middleware in reversed(self._middleware):
            handler = _wrap(middleware, handler)
        return handler

    async def handle(self, request: Request) -> Response:
        request = replace(request, request_id=request.request_id or request_id_for(request))
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            response = await self._chain()(request)
        except Exception as exc:
            failure = exc
            response = response_for(exc, request.request_id)
        response.headers["x-request-id"] = request.request_id
        if response.status >= 500 and self._on_server_error is not None:
            try:
                self._on_server_error(failure, request, response)
            except Exception:  # a broken hook must not break the response
                log.exception("error hook failed")
        _log_request(request, response, time.perf_counter() - started)
        return response


def _wrap(middleware: Middleware, inner: Handler) -> Handler:
    async def call(request: Request) -> Response:
        return await middleware(request, inner)

    return call


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
    log.log(level, "%s", json.dumps(record, separators=(",", ":")))
