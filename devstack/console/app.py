"""The console's HTTP server (aiohttp): server-rendered pages, their live regions, the DLQ
buttons, and the endpoint the dev entrypoint reports requests to.

    GET  /                               -> /console/requests
    GET  /console/{view}                 a page: requests, qstash, outbox, emails, redis
    GET  /console/live/{view}            its live region (htmx polls it every second)
    POST /console/qstash/dlq/{id}/retry  QStash `POST /v2/dlq/retry/{id}`, back to the page
    POST /console/qstash/dlq/{id}/delete QStash `DELETE /v2/dlq/{id}`, back to the page
    POST /console/api/requests           one `RequestRecord` (JSON) from the dev entrypoint
    GET  /console/api/requests           the records, JSON (newest first)
    GET  /console/static/htmx.min.js     the vendored htmx

Dev only: it binds loopback, has no authentication and shows Redis key names (never
values of non-string keys, never tokens). Two checks keep other web pages the developer
visits out: the `Host` must be a loopback name (no DNS rebinding), and a `POST` carrying an
`Origin` must come from the console itself (no cross-site form posts to the DLQ buttons).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path

from aiohttp import web

from devstack.console import views
from devstack.console.records import RequestLog, RequestRecord
from devstack.console.sources import Sources

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MAX_INGEST_BYTES = 256 * 1024
HTML = "text/html"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _forbidden(message: str) -> web.Response:
    return web.json_response({"error": message}, status=403)


@web.middleware
async def same_origin_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """403 JSON for a non-loopback `Host` or a cross-origin `POST`."""
    host = request.headers.get("Host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name.lower() not in LOOPBACK_HOSTS:
        return _forbidden("the console answers only on 127.0.0.1 / localhost")
    origin = request.headers.get("Origin")
    if request.method == "POST" and origin is not None and origin != f"http://{host}":
        return _forbidden("cross-origin POST refused")
    return await handler(request)


class ConsoleServer:
    """Routes over the request log and the devstack sources."""

    def __init__(
        self,
        sources: Sources,
        *,
        email_url: str,
        cache_ttl_ms: int = 60_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sources = sources
        self.email_url = email_url
        self.cache_ttl_ms = cache_ttl_ms
        self.clock = clock
        self.requests = RequestLog()
        self.retried_from: dict[str, str] = {}
        self.deleted: set[str] = set()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_INGEST_BYTES, middlewares=[same_origin_only])
        app.router.add_get("/", self._root)
        app.router.add_get("/console", self._root)
        app.router.add_get("/console/static/htmx.min.js", self._htmx)
        app.router.add_post("/console/api/requests", self._ingest)
        app.router.add_get("/console/api/requests", self._list_requests)
        app.router.add_post("/console/qstash/dlq/{id}/retry", self._dlq_retry)
        app.router.add_post("/console/qstash/dlq/{id}/delete", self._dlq_delete)
        app.router.add_get("/console/live/{view}", self._live)
        app.router.add_get("/console/{view}", self._page)
        return app

    async def _root(self, _request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/console/requests")

    async def _htmx(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(
            STATIC / "htmx.min.js", headers={"Content-Type": "application/javascript"}
        )

    async def _ingest(self, request: web.Request) -> web.Response:
        try:
            record = RequestRecord.from_mapping(json.loads(await request.read()))
        except ValueError as exc:
            answer = {"error": "bad request record", "detail": str(exc)}
            return web.json_response(answer, status=400)
        self.requests.add(record)
        return web.json_response({"ok": True}, status=201)

    async def _list_requests(self, _request: web.Request) -> web.Response:
        return web.json_response([asdict(r) for r in self.requests.newest_first(500)])

    async def _dlq_retry(self, request: web.Request) -> web.StreamResponse:
        dlq_id = request.match_info["id"]
        entry = next((d for d in await self.sources.dlq() if d.get("dlqId") == dlq_id), None)
        status, answer = await self.sources.dlq_retry(dlq_id)
        if status == 200 and entry is not None and answer.get("messageId"):
            self.retried_from[str(answer["messageId"])] = str(entry.get("messageId", ""))
        raise web.HTTPSeeOther("/console/qstash")

    async def _dlq_delete(self, request: web.Request) -> web.StreamResponse:
        dlq_id = request.match_info["id"]
        entry = next((d for d in await self.sources.dlq() if d.get("dlqId") == dlq_id), None)
        if await self.sources.dlq_delete(dlq_id) == 200 and entry is not None:
            self.deleted.add(str(entry.get("messageId", "")))
        raise web.HTTPSeeOther("/console/qstash")

    async def render(self, view: str, request: web.Request) -> str:
        records = self.requests.newest_first(500)
        if view == "requests":
            return views.requests_view(records[:100])
        if view == "qstash":
            snap = await self.sources.snapshot(
                "pending", "dlq", "schedules", "flow_control", "events"
            )
            rows = views.message_rows(
                self.requests.publishers(),
                self.requests.attempts(),
                snap.pending,
                snap.dlq,
                self.retried_from,
                self.deleted,
                snap.events,
            )
            return views.qstash_view(rows, snap)
        if view == "outbox":
            return views.outbox_view(await self.sources.snapshot("outbox"))
        if view == "emails":
            return views.emails_list(await self.sources.snapshot("emails"))
        if view == "redis":
            snap = await self.sources.snapshot("keys")
            return views.redis_view(snap, records, self.now_ms(), self.cache_ttl_ms)
        raise web.HTTPNotFound(
            text=json.dumps({"error": "unknown view"}), content_type="application/json"
        )

    async def _page(self, request: web.Request) -> web.Response:
        view = request.match_info["view"]
        if view == "emails":
            snap = await self.sources.snapshot("emails")
            page = views.emails_page(snap, self.email_url, request.query.get("id"))
            return web.Response(text=page, content_type=HTML)
        live = await self.render(view, request)
        return web.Response(text=views.layout(view, live), content_type=HTML)

    async def _live(self, request: web.Request) -> web.Response:
        return web.Response(
            text=await self.render(request.match_info["view"], request), content_type=HTML
        )
