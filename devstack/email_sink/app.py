"""The sink's HTTP API (aiohttp): Resend's ``POST /emails`` plus ways to read what arrived.

    POST   /emails              send: 200 {"id"}; Bearer key required (any non-empty one)
    GET    /emails[?to=addr]    {"data": [{id, from, to, subject, html, text, created_at,
                                 idempotency_key}, ...]}, oldest first
    GET    /emails/{id}         one email (404 JSON when unknown)
    GET    /emails/{id}/html    its HTML body as a page (sandboxed by CSP)
    DELETE /emails              forget every email and idempotency key: {"deleted": n}
    GET    /                    the inbox page for humans
    POST   /_devstack/fail-next {"count": N, "status": 500, "retry_after"?: s}: the next N
                                sends answer that status and store nothing

Errors use Resend's shape ``{"statusCode", "name", "message"}``: 401
``missing_api_key``, 400 ``invalid_idempotency_key``, 422 ``validation_error``,
409 ``invalid_idempotent_request`` (a known key with a different payload).

Order of checks on ``POST /emails``: auth, then an armed failure, then the
idempotency key, then the body. A replay answers the first id with
``Idempotent-Replayed: true``. Only ``POST /emails`` needs a key: the sink binds
loopback and its inbox must open in a browser; the read and devstack routes are
not part of Resend's API.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from devstack.email_sink.inbox import BODY_CSP, PAGE_CSP, render_inbox
from devstack.email_sink.model import ApiError, parse_email, parse_idempotency_key
from devstack.email_sink.store import EmailStore, FailureSwitch, InjectedFailure

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024
FAIL_NEXT_PATH = "/_devstack/fail-next"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error_response(error: ApiError) -> web.Response:
    return web.json_response(error.to_json(), status=error.status)


def _check_api_key(request: web.Request) -> None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "missing_api_key", "Missing API key in the authorization header.")


def _parse_failure(body: bytes) -> tuple[int, InjectedFailure]:
    try:
        spec = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(422, "validation_error", "The request body is not valid JSON.") from None
    if not isinstance(spec, dict):
        raise ApiError(422, "validation_error", "The request body must be a JSON object.")
    count, status = spec.get("count", 1), spec.get("status", 500)
    retry_after = spec.get("retry_after")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ApiError(422, "validation_error", "`count` must be an integer >= 0.")
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        raise ApiError(422, "validation_error", "`status` must be an HTTP error status (4xx/5xx).")
    if retry_after is not None and (
        not isinstance(retry_after, int) or isinstance(retry_after, bool) or retry_after < 0
    ):
        raise ApiError(422, "validation_error", "`retry_after` must be whole seconds >= 0.")
    return count, InjectedFailure(status, retry_after)


class EmailSinkServer:
    """Routes over one :class:`EmailStore`; build the app with :meth:`make_app`."""

    def __init__(self, store: EmailStore | None = None) -> None:
        self.store = store if store is not None else EmailStore()
        self.failures = FailureSwitch()

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors], client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/emails", self._send)
        app.router.add_get("/emails", self._list)
        app.router.add_delete("/emails", self._clear)
        app.router.add_get("/emails/{id}", self._get)
        app.router.add_get("/emails/{id}/html", self._get_html)
        app.router.add_get("/", self._inbox)
        app.router.add_post(FAIL_NEXT_PATH, self._fail_next)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return _error_response(exc)
        except web.HTTPException as exc:  # 404 route, 405 method, 413 body too large
            if exc.status < 400:
                raise
            name = (exc.reason or "error").lower().replace(" ", "_")
            return _error_response(ApiError(exc.status, name, exc.reason or "Request refused."))
        except Exception:
            log.exception("unexpected error handling %s %s", request.method, request.path)
            return _error_response(ApiError(500, "application_error", "Internal server error."))

    async def _send(self, request: web.Request) -> web.Response:
        _check_api_key(request)
        failure = self.failures.take()
        if failure is not None:
            response = _error_response(
                ApiError(failure.status, "injected_failure", "Failure injected by fail-next.")
            )
            if failure.retry_after is not None:
                response.headers["Retry-After"] = str(failure.retry_after)
            return response
        key = parse_idempotency_key(request.headers.get("Idempotency-Key"))
        draft = parse_email(await request.read())
        email, created = self.store.add(draft, key)
        log.info("email %s %s", email.id, "captured" if created else "replayed (idempotency key)")
        headers = {} if created else {"Idempotent-Replayed": "true"}
        return web.json_response({"id": email.id}, headers=headers)

    async def _list(self, request: web.Request) -> web.Response:
        emails = self.store.list(request.query.get("to"))
        return web.json_response({"data": [e.to_json() for e in emails]})

    async def _get(self, request: web.Request) -> web.Response:
        email = self.store.get(request.match_info["id"])
        if email is None:
            raise ApiError(404, "not_found", "Email not found.")
        return web.json_response(email.to_json())

    async def _get_html(self, request: web.Request) -> web.Response:
        email = self.store.get(request.match_info["id"])
        if email is None or email.draft.html is None:
            raise ApiError(404, "not_found", "Email not found or it has no HTML body.")
        return web.Response(
            text=email.draft.html,
            content_type="text/html",
            headers={"Content-Security-Policy": BODY_CSP, "X-Content-Type-Options": "nosniff"},
        )

    async def _clear(self, _request: web.Request) -> web.Response:
        return web.json_response({"deleted": self.store.clear()})

    async def _inbox(self, _request: web.Request) -> web.Response:
        return web.Response(
            text=render_inbox(self.store.list()),
            content_type="text/html",
            headers={"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff"},
        )

    async def _fail_next(self, request: web.Request) -> web.Response:
        count, failure = _parse_failure(await request.read())
        self.failures.arm(count, failure)
        log.info("the next %d sends will fail with HTTP %d", count, failure.status)
        return web.json_response({"count": count, "status": failure.status})
