"""What a platform adapter serves, and the answers it gives before the app runs.

The ASGI adapter (`shared.web.asgi`) and the Workers adapter (`worker/worker_adapter.py`)
only convert requests and responses. Both serve a `Served` (the composition root's
bundle satisfies it) and both answer the two failures that can happen before the app
runs, building the app (a configuration error) and reading a body over the limit,
through `early_answer`, so the two platforms answer them alike.
"""

from __future__ import annotations

from typing import Protocol

from shared.web.app import App, new_request_id
from shared.web.errors import error_response, response_for
from shared.web.http import Response


class Served(Protocol):
    """The app an adapter serves, with the limits the adapter applies itself."""

    @property
    def app(self) -> App: ...

    @property
    def max_body_bytes(self) -> int: ...

    @property
    def client_ip_header(self) -> str | None:
        """The trusted header naming the client (right-most entry), or None: the peer."""
        ...

    @property
    def country_header(self) -> str | None:
        """The trusted header stating the client's country (Vercel's), or None."""
        ...


class BodyTooLarge(Exception):
    """The request body passed `max_body_bytes`; raised while reading it."""


def declares_too_large(content_length: str | None, max_body_bytes: int) -> bool:
    """True when a `Content-Length` header announces more than `max_body_bytes`.

    Only ASCII digits count (`str.isdigit` also accepts `"²"`, which `int` refuses); a
    malformed value announces nothing, and the body read itself is still bounded.
    """
    if not content_length or not (content_length.isascii() and content_length.isdigit()):
        return False
    return int(content_length) > max_body_bytes


def early_answer(exc: Exception) -> Response:
    """The JSON answer to a failure before the app ran (413, or the error mapping's
    answer, e.g. 500 "Server misconfigured"), with a fresh `x-request-id`."""
    request_id = new_request_id()
    if isinstance(exc, BodyTooLarge):
        response = error_response(413, "Request body too large")
    else:
        response = response_for(exc, request_id)
    response.headers["x-request-id"] = request_id
    return response
