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

    async def fetch(self, request: Any, env: Any, ctx: Any) -> Any:
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


def _js_request(request: Any) -> Any:
    """The JS `Request` under the SDK's wrapper (or the request itself, already JS)."""
    js_request = getattr(request, "js_object", None)
    return request if js_request is None else js_request


async def to_shared_request(request: Any, max_body_bytes: int) -> Request:
    """Read straight from the JS `Request` (the SDK's properties wrap each read): the headers
    in one JS-to-Python conversion (JS `Headers` already joins repeated fields)."""
    js_request = _js_request(request)
    entries: dict[str, str] = js.Object.fromEntries(js_request.headers).to_py()
    headers = Headers(entries)
    if declares_too_large(headers.get("content-length"), max_body_bytes):
        raise BodyTooLarge
    method = str(js_request.method).upper()
    body = b"" if method in ("GET", "HEAD") else bytes(await request.bytes())
    if len(body) > max_body_bytes:
        raise BodyTooLarge
    path, query = _path_and_query(str(js_request.url))
    return Request(
        method=method,
        path=path,
        query_string=query,
        headers=headers,
        body=body,
        client_ip=headers.get("cf-connecting-ip"),
        country=cf_country(js_request),
    )


def _path_and_query(url: str) -> tuple[str, str]:
    """Path and query of the absolute URL a JS `Request` carries (`urlsplit` does far more)."""
    _, separator, rest = url.partition("://")
    if not separator:
        parts = urlsplit(url)
        return parts.path or "/", parts.query
    slash = rest.find("/")
    target = rest[slash:] if slash >= 0 else "/"
    target = target.partition("#")[0]
    path, _, query = target.partition("?")
    return path or "/", query


def to_worker_response(response: Response) -> Any:
    """The JS `Response` itself, built directly (workerd and the SDK's RPC conversion pass a
    JS object through; the SDK's `Response` wrapper costs more than the whole build): status
    and headers as one plain JS object, a UTF-8 body as a JS string (when the response names
    its content type: a string body would otherwise get `text/plain`), any other as one
    `Uint8Array`."""
    init = to_js(
        {"status": response.status, "headers": response.headers},
        dict_converter=js.Object.fromEntries,
    )
    raw = response.body
    if not raw or response.status in (204, 304):
        return js.Response.new(None, init)
    body: Any = None
    if "content-type" in response.headers:
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            body = None
    return js.Response.new(to_js(raw) if body is None else body, init)
