"""The Cloudflare Workers adapter: Workers request -> shared `Request`, `Response` back,
settings from `env`, one request scope per request, background work to `ctx.waitUntil`.

Imports `workers`/`js`/`pyodide` (the entrypoint side of the house) and never pydantic:
the app is assembled by `shared.app.assembly`, which degrades order creation to a
clear 503 where pydantic cannot load (offline Pyodide), and uses it where it can
(deployed Workers vendor it from pyproject dependencies).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import js
from js_fetch import JsFetchTransport
from pyodide.ffi import to_js
from workers import Response as WorkerResponse

from shared.app.assembly import AppBundle, build_app
from shared.background import background
from shared.scope import request_scope
from shared.web.geo import cf_country
from shared.web.http import Headers, Request, Response
from shared.web.served import BodyTooLarge, declares_too_large, early_answer


class JsEnv(Mapping[str, str]):
    """Workers' `env` (vars and secrets) read as a mapping of strings."""

    def __init__(self, env: Any) -> None:
        self._env = env

    def __getitem__(self, name: str) -> str:
        value = getattr(self._env, name, None)
        if value is None or not isinstance(value, str | int | float):
            raise KeyError(name)  # bindings (KV, queues...) are not settings
        return str(value)

    def __iter__(self) -> Iterator[str]:
        return iter(list(js.Object.keys(self._env)))

    def __len__(self) -> int:
        return len(list(js.Object.keys(self._env)))


class WorkerApp:
    """Builds the shared app once per isolate (on the first request: no I/O at import)."""

    def __init__(self) -> None:
        self._bundle: AppBundle | None = None

    def bundle(self, env: Any) -> AppBundle:
        if self._bundle is None:
            self._bundle = build_app(JsEnv(env), transport=JsFetchTransport())
        return self._bundle

    async def fetch(self, request: Any, env: Any, ctx: Any) -> WorkerResponse:
        async with request_scope("worker-fetch"):
            work = background()
            try:
                bundle = self.bundle(env)
                shared_request = await to_shared_request(request, bundle.max_body_bytes)
                response = await bundle.app.handle(shared_request)
            except Exception as exc:  # too large, or a settings error: before the app's mapping
                response = early_answer(exc)
            if work.pending():
                ctx.waitUntil(work.drain())
            return to_worker_response(response)

    async def scheduled(self, controller: Any, env: Any, ctx: Any) -> None:
        async with request_scope("worker-scheduled"):
            work = background()
            await self.bundle(env).scheduled(str(getattr(controller, "cron", "")))
            if work.pending():
                ctx.waitUntil(work.drain())


def _header_pairs(request: Any) -> list[tuple[str, str]]:
    """The request's headers in one JS-to-Python conversion (the SDK's `request.headers`
    builds an `HTTPMessage` field by field); JS `Headers` already joins repeated fields."""
    js_request = getattr(request, "js_object", None)
    if js_request is None:
        return list(request.headers.items())
    entries: dict[str, str] = js.Object.fromEntries(js_request.headers).to_py()
    return list(entries.items())


async def to_shared_request(request: Any, max_body_bytes: int) -> Request:
    headers = Headers(_header_pairs(request))
    if declares_too_large(headers.get("content-length"), max_body_bytes):
        raise BodyTooLarge
    method = str(request.method).upper()
    body = b"" if method in ("GET", "HEAD") else bytes(await request.bytes())
    if len(body) > max_body_bytes:
        raise BodyTooLarge
    url = urlsplit(str(request.url))
    return Request(
        method=method,
        path=url.path or "/",
        query_string=url.query,
        headers=headers,
        body=body,
        client_ip=headers.get("cf-connecting-ip"),
        country=cf_country(request),
    )


def to_worker_response(response: Response) -> WorkerResponse:
    """The JS `Response` built directly: status and headers as one plain JS object, the body
    as one `Uint8Array` (the SDK's constructor converts headers pair by pair)."""
    body = response.body if response.body and response.status not in (204, 304) else None
    init = to_js(
        {"status": response.status, "headers": dict(response.headers)},
        dict_converter=js.Object.fromEntries,
    )
    return WorkerResponse(js.Response.new(None if body is None else to_js(body), init))
