"""The one place that turns failures into HTTP answers: JSON `{"error", "detail"?}`."""

from __future__ import annotations

import logging
from typing import Any

from shared.errors import (
    ConfigError,
    QStashError,
    RedisError,
    SignatureError,
    TransportError,
    UpstashError,
)
from shared.web.http import HttpError, Response

__all__ = ["HttpError", "error_response", "is_upstream_outage", "response_for"]

log = logging.getLogger(__name__)


def error_response(
    status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return Response.json(body, status, headers)


def is_upstream_outage(exc: BaseException | None) -> bool:
    """True for what `response_for` answers 503 "Upstream service unavailable": Redis, QStash
    or the network failing (an `UpstashError` that is neither a misconfiguration nor a bad
    signature), not a bug. The app throttles the reports of these during an outage."""
    return isinstance(exc, UpstashError) and not isinstance(exc, ConfigError | SignatureError)


def response_for(exc: BaseException, request_id: str) -> Response:
    """Maps any exception to a response; unexpected ones are a 500 without internals."""
    if isinstance(exc, HttpError):
        return error_response(exc.status, exc.message, exc.detail, exc.headers)
    if isinstance(exc, SignatureError):
        return error_response(401, "Invalid signature", exc.reason)
    if isinstance(exc, TransportError | RedisError | QStashError):
        log.warning("upstream failure (request %s): %s", request_id, type(exc).__name__)
        return error_response(503, "Upstream service unavailable", {"request_id": request_id})
    if isinstance(exc, ConfigError):
        log.error("configuration error (request %s): %s", request_id, exc)
        return error_response(500, "Server misconfigured", {"request_id": request_id})
    if isinstance(exc, UpstashError):
        log.error("upstash error (request %s): %s", request_id, type(exc).__name__)
        return error_response(503, "Upstream service unavailable", {"request_id": request_id})
    log.error("unhandled %s (request %s)", type(exc).__name__, request_id, exc_info=exc)
    return error_response(500, "Internal server error", {"request_id": request_id})
