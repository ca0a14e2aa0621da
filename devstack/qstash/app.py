"""The local QStash's HTTP API (aiohttp), the subset the official SDKs and our client use.

    POST   /v2/publish/<destination>   200 {"messageId"}; 202 + original id when deduplicated
    POST   /v2/batch                   [{destination, headers, body}] -> [{"messageId"}...]
    GET    /v2/messages/<id>           a pending message;  DELETE cancels it
    GET    /v2/dlq                     {"messages": [...], "cursor"?};  GET/DELETE /v2/dlq/<dlqId>
    POST   /v2/dlq/retry/<dlqId>       publish the dead message again
    GET    /v2/keys                    {"current", "next"}

Every route needs `Authorization: Bearer <token>` (401 JSON otherwise).
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from devstack.qstash.delivery import Scheduler, new_id, now_ms
from devstack.qstash.model import Message, PublishError, dedup_key, parse_publish
from devstack.qstash.store import QStashStore

log = logging.getLogger(__name__)

PUBLISH_PREFIX = "/v2/publish/"
MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class QStashConfig:
    """Settings of one local QStash server."""

    redis_url: str
    token: str
    current_signing_key: str
    next_signing_key: str
    time_scale: float = 1.0
    loopback_only: bool = True


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"error": message}, status=status)


class QStashServer:
    """Routes and handlers; state lives in `store`, deliveries in `scheduler`."""

    def __init__(self, config: QStashConfig, store: QStashStore, scheduler: Scheduler) -> None:
        self.config = config
        self.store = store
        self.scheduler = scheduler

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth], client_max_size=MAX_BODY_BYTES)
        app.router.add_route("POST", "/v2/publish/{destination:.+}", self._publish)
        app.router.add_post("/v2/batch", self._batch)
        app.router.add_get("/v2/messages/{id}", self._get_message)
        app.router.add_delete("/v2/messages/{id}", self._cancel)
        app.router.add_get("/v2/dlq", self._dlq_list)
        app.router.add_get("/v2/dlq/{id}", self._dlq_get)
        app.router.add_delete("/v2/dlq/{id}", self._dlq_delete)
        app.router.add_post("/v2/dlq/retry/{id}", self._dlq_retry)
        app.router.add_get("/v2/keys", self._keys)
        return app

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        expected = self.config.token.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            return _error("Unauthorized: missing or invalid bearer token", 401)
        try:
            return await handler(request)
        except PublishError as exc:
            return _error(str(exc), 400)

    async def _accept(
        self, destination: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, object]]:
        """Stores one message (or finds its duplicate): (status, JSON answer)."""
        message_id = new_id("msg")
        message = parse_publish(
            message_id,
            destination,
            headers,
            body,
            now_ms=now_ms(),
            loopback_only=self.config.loopback_only,
        )
        message = self._scaled(message)
        key = dedup_key(headers, destination, body)
        if key is not None:
            original = await self.store.claim_dedup(key, message_id)
            if original is not None:
                return 202, {"messageId": original, "deduplicated": True}
        await self.store.enqueue(message)
        self.scheduler.wake()
        return 200, {"messageId": message_id}

    def _scaled(self, message: Message) -> Message:
        """Applies the devstack time scale to the initial delay."""
        delay = message.not_before - message.created_at
        if delay <= 0:
            return message
        return message.evolve(
            not_before=message.created_at + round(delay * self.scheduler.time_scale)
        )

    async def _publish(self, request: web.Request) -> web.Response:
        destination = request.raw_path[len(PUBLISH_PREFIX) :]
        body = await request.read()
        status, answer = await self._accept(destination, request.headers, body)
        return web.json_response(answer, status=status)

    async def _batch(self, request: web.Request) -> web.Response:
        try:
            items = json.loads(await request.read())
        except ValueError:
            return _error("batch body must be a JSON array", 400)
        if not isinstance(items, list) or not items:
            return _error("batch body must be a non-empty JSON array", 400)
        checked: list[tuple[str, dict[str, str], bytes]] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("destination"), str):
                return _error(f"batch item {index}: destination is required", 400)
            headers = item.get("headers") or {}
            body = item.get("body") or ""
            if not isinstance(headers, dict) or not all(
                isinstance(v, str) for v in headers.values()
            ):
                return _error(f"batch item {index}: headers must map names to strings", 400)
            if not isinstance(body, str):
                return _error(f"batch item {index}: body must be a string", 400)
            parse_publish(
                "check",
                item["destination"],
                headers,
                b"",
                now_ms=0,
                loopback_only=self.config.loopback_only,
            )  # 400 before storing any
            checked.append((item["destination"], headers, body.encode()))
        results = []
        for destination, headers, body_bytes in checked:
            _, answer = await self._accept(destination, headers, body_bytes)
            results.append(answer)
        return web.json_response(results)

    async def _get_message(self, request: web.Request) -> web.Response:
        message = await self.store.get(request.match_info["id"])
        if message is None:
            return _error("message not found", 404)
        return web.json_response(message.api_view())

    async def _cancel(self, request: web.Request) -> web.Response:
        if not await self.store.cancel(request.match_info["id"]):
            return _error("message not found", 404)
        return web.Response(status=202)

    @staticmethod
    def _dlq_view(entry: Mapping[str, object]) -> dict[str, object]:
        message = Message(**entry["message"])  # type: ignore[arg-type]
        view = message.api_view()
        view["dlqId"] = entry["dlqId"]
        view["responseStatus"] = message.last_status
        view["responseHeader"] = {k: [v] for k, v in message.last_headers.items()}
        try:
            view["responseBody"] = base64_text(message.last_body_b64)
        except UnicodeDecodeError:
            view["responseBodyBase64"] = message.last_body_b64
        return view

    async def _dlq_list(self, request: web.Request) -> web.Response:
        try:
            cursor = int(request.query.get("cursor", "0"))
            count = max(1, min(100, int(request.query.get("count", "100"))))
        except ValueError:
            return _error("cursor and count must be integers", 400)
        entries, next_cursor = await self.store.dlq_list(cursor, count)
        views = [self._dlq_view(e) for e in entries]
        if "messageId" in request.query:
            views = [v for v in views if v["messageId"] == request.query["messageId"]]
        if "url" in request.query:
            views = [v for v in views if v["url"] == request.query["url"]]
        answer: dict[str, object] = {"messages": views}
        if next_cursor is not None:
            answer["cursor"] = str(next_cursor)
        return web.json_response(answer)

    async def _dlq_get(self, request: web.Request) -> web.Response:
        entry = await self.store.dlq_get(request.match_info["id"])
        if entry is None:
            return _error("dlq message not found", 404)
        return web.json_response(self._dlq_view(entry))

    async def _dlq_delete(self, request: web.Request) -> web.Response:
        if not await self.store.dlq_delete(request.match_info["id"]):
            return _error("dlq message not found", 404)
        return web.Response(status=200)

    async def _dlq_retry(self, request: web.Request) -> web.Response:
        dlq_id = request.match_info["id"]
        entry = await self.store.dlq_get(dlq_id)
        if entry is None:
            return _error("dlq message not found", 404)
        dead = Message(**entry["message"])
        at = now_ms()
        fresh = dead.evolve(
            id=new_id("msg"),
            retried=0,
            created_at=at,
            not_before=at,
            last_status=0,
            last_headers={},
            last_body_b64="",
        )
        await self.store.enqueue(fresh)
        await self.store.dlq_delete(dlq_id)
        self.scheduler.wake()
        return web.json_response({"messageId": fresh.id})

    async def _keys(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"current": self.config.current_signing_key, "next": self.config.next_signing_key}
        )


def base64_text(value: str) -> str:
    """Decodes base64 to UTF-8 text; `UnicodeDecodeError` for binary content."""
    return base64.b64decode(value).decode("utf-8")
