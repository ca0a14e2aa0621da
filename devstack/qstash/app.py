"""The local QStash's HTTP API (aiohttp), the subset the official SDKs and our client use.

    POST   /v2/publish/<destination>   200 {"messageId"}; 202 + original id when deduplicated
    POST   /v2/batch                   [{destination, headers, body}] -> [{"messageId"}...]
    GET    /v2/messages/<id>           a pending message;  DELETE cancels it
    GET    /v2/dlq                     {"messages": [...], "cursor"?};  GET/DELETE /v2/dlq/<dlqId>
    POST   /v2/dlq/retry/<dlqId>       publish the dead message again (headers override)
    GET    /v2/keys                    {"current", "next"}
    POST   /v2/topics/<name>/endpoints {"endpoints": [{url, name?}]} (creates the URL group)
    DELETE /v2/topics/<name>/endpoints remove endpoints;  GET/DELETE /v2/topics[/<name>]
    POST   /v2/publish/<group name>    one message per endpoint -> [{"messageId", "url"}]
    POST   /v2/schedules/<destination> Upstash-Cron + publish headers -> {"scheduleId"}
    GET    /v2/schedules[/<id>]        DELETE /v2/schedules/<id>; PATCH .../pause, .../resume
    GET    /v2/events                  the log: {"events": [...], "cursor"?}, newest first
    GET    /v2/flowControl/<key>       wait list, in-flight count and rate window of a key

Flow control (`Upstash-Flow-Control-Key/-Value`) holds a due delivery while its key has
`parallelism` attempts in flight or started `rate` attempts in the last `period` (a
sliding window, scaled like every QStash wait); held deliveries wait, none is dropped.

Every route needs `Authorization: Bearer <token>` (401 JSON otherwise).
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from devstack.qstash.delivery import Scheduler, new_id, next_cron_ms, now_ms
from devstack.qstash.model import (
    Message,
    PublishError,
    check_destination,
    dedup_key,
    parse_publish,
)
from devstack.qstash.store import QStashStore

log = logging.getLogger(__name__)

PUBLISH_PREFIX = "/v2/publish/"
SCHEDULE_PREFIX = "/v2/schedules/"
MAX_BODY_BYTES = 1024 * 1024
GROUP_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
PAGE = 100
MAX_DLQ_SCAN = 100_000
DLQ_FILTERS = {  # query parameter -> field of the DLQ view
    "messageId": "messageId",
    "url": "url",
    "topicName": "topicName",
    "scheduleId": "scheduleId",
    "responseStatus": "responseStatus",
    "label": "label",
}


class NotFound(Exception):
    """A named resource (URL group, schedule) does not exist: 404."""


def _is_group(destination: str) -> bool:
    return "://" not in destination


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
        scheduler.fire_schedule = self._fire_schedule

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
        app.router.add_post("/v2/topics/{name}/endpoints", self._topic_upsert)
        app.router.add_delete("/v2/topics/{name}/endpoints", self._topic_remove)
        app.router.add_get("/v2/topics", self._topic_list)
        app.router.add_get("/v2/topics/{name}", self._topic_get)
        app.router.add_delete("/v2/topics/{name}", self._topic_delete)
        app.router.add_post("/v2/schedules/{destination:.+}", self._schedule_create)
        app.router.add_get("/v2/schedules", self._schedule_list)
        app.router.add_get("/v2/schedules/{id}", self._schedule_get)
        app.router.add_delete("/v2/schedules/{id}", self._schedule_delete)
        for method in ("PATCH", "POST"):
            app.router.add_route(method, "/v2/schedules/{id}/pause", self._schedule_pause)
            app.router.add_route(method, "/v2/schedules/{id}/resume", self._schedule_resume)
        app.router.add_get("/v2/events", self._events)
        app.router.add_get("/v2/flowControl", self._flow_control_list)
        app.router.add_get("/v2/flowControl/{key}", self._flow_control)
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
        except NotFound as exc:
            return _error(str(exc), 404)

    async def _accept(
        self,
        destination: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        schedule_id: str | None = None,
    ) -> tuple[int, object]:
        """Stores one message (or one per URL-group endpoint, or finds the duplicate)."""
        if _is_group(destination):
            return await self._accept_group(destination, headers, body, schedule_id)
        message_id = new_id("msg")
        message = parse_publish(
            message_id,
            destination,
            headers,
            body,
            now_ms=now_ms(),
            loopback_only=self.config.loopback_only,
        )
        message = self._scaled(message).evolve(schedule_id=schedule_id)
        key = dedup_key(headers, destination, body)
        if key is not None and schedule_id is None:
            original = await self.store.claim_dedup(key, message_id)
            if original is not None:
                return 202, {"messageId": original, "deduplicated": True}
        await self.store.enqueue(message)
        self.scheduler.wake()
        return 200, {"messageId": message_id}

    async def _accept_group(
        self, name: str, headers: Mapping[str, str], body: bytes, schedule_id: str | None
    ) -> tuple[int, object]:
        """URL-group fan-out: one message per endpoint, all stored in one transaction."""
        if not GROUP_NAME.fullmatch(name):
            raise PublishError(
                f"invalid destination {name!r}: neither an http(s) URL nor a URL group name"
            )
        topic = await self.store.get_topic(name)
        if topic is None:
            raise NotFound(f"url group {name!r} not found")
        at = now_ms()
        messages = []
        for endpoint in topic["endpoints"]:
            message = parse_publish(
                new_id("msg"),
                endpoint["url"],
                headers,
                body,
                now_ms=at,
                loopback_only=self.config.loopback_only,
            )
            messages.append(
                self._scaled(message).evolve(
                    topic_name=name, endpoint_name=endpoint.get("name"), schedule_id=schedule_id
                )
            )
        answer = [{"messageId": m.id, "url": m.url} for m in messages]
        key = dedup_key(headers, name, body)
        if key is not None and schedule_id is None:
            original = await self.store.claim_dedup(key, json.dumps(answer))
            if original is not None:
                earlier = json.loads(original) if original.startswith("[") else []
                return 202, [{**item, "deduplicated": True} for item in earlier]
        await self.store.enqueue(*messages)
        self.scheduler.wake()
        return 200, answer

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
                "http://127.0.0.1/" if _is_group(item["destination"]) else item["destination"],
                headers,
                b"",
                now_ms=0,
                loopback_only=self.config.loopback_only,
            )  # 400 before storing any
            checked.append((item["destination"], headers, body.encode()))
        results: list[object] = []
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
        if not await self.store.cancel(request.match_info["id"], now_ms=now_ms()):
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
        # filters first, then the page: a cursor walks the matching entries only
        entries, _ = await self.store.dlq_list(0, MAX_DLQ_SCAN)
        views = [self._dlq_view(e) for e in entries]
        for param, field_name in DLQ_FILTERS.items():
            if param in request.query:
                wanted = request.query[param]
                views = [v for v in views if str(v.get(field_name, "")) == wanted]
        next_cursor = cursor + count if cursor + count < len(views) else None
        views = views[cursor : cursor + count]
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
        overrides = {k: v for k, v in request.headers.items() if k.lower().startswith("upstash-")}
        if overrides:  # documented: configuration headers override the dead message's
            check = parse_publish("check", dead.url, overrides, b"", now_ms=at, loopback_only=False)
            lowered = {k.lower() for k in overrides}
            changes: dict[str, object] = {}
            if "upstash-retries" in lowered:
                changes["max_retries"] = check.max_retries
            if lowered & {"upstash-delay", "upstash-not-before"}:
                changes["not_before"] = self._scaled(check).not_before
            if "upstash-flow-control-key" in lowered:
                changes.update(
                    flow_key=check.flow_key,
                    flow_rate=check.flow_rate,
                    flow_period_s=check.flow_period_s,
                    flow_parallelism=check.flow_parallelism,
                )
            fresh = fresh.evolve(**changes)
        await self.store.enqueue(fresh)
        await self.store.dlq_delete(dlq_id)
        self.scheduler.wake()
        return web.json_response({"messageId": fresh.id})

    async def _keys(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"current": self.config.current_signing_key, "next": self.config.next_signing_key}
        )

    # ------------------------------------------------------------ URL groups

    @staticmethod
    def _group_name(request: web.Request) -> str:
        name = request.match_info["name"]
        if not GROUP_NAME.fullmatch(name):
            raise PublishError(f"invalid url group name {name!r} (want [A-Za-z0-9._-]{{1,128}})")
        return name

    async def _endpoints_of(self, request: web.Request) -> list[dict[str, str]]:
        try:
            payload = json.loads(await request.read())
        except ValueError:
            raise PublishError('body must be JSON: {"endpoints": [{"url": ...}]}') from None
        items = payload.get("endpoints") if isinstance(payload, dict) else None
        if not isinstance(items, list) or not items:
            raise PublishError("body needs a non-empty 'endpoints' list")
        endpoints = []
        for item in items:
            if not isinstance(item, dict):
                raise PublishError("every endpoint must be an object")
            endpoint = {k: item[k] for k in ("url", "name") if isinstance(item.get(k), str)}
            if not endpoint:
                raise PublishError("every endpoint needs a url or a name")
            endpoints.append(endpoint)
        return endpoints

    async def _topic_upsert(self, request: web.Request) -> web.Response:
        name = self._group_name(request)
        endpoints = await self._endpoints_of(request)
        for endpoint in endpoints:
            if "url" not in endpoint:
                raise PublishError("every endpoint to add needs a url")
            check_destination(endpoint["url"], loopback_only=self.config.loopback_only)
        at = now_ms()
        topic = await self.store.get_topic(name) or {"name": name, "createdAt": at, "endpoints": []}
        kept = [
            e
            for e in topic["endpoints"]
            if not any(
                e["url"] == n["url"] or (e.get("name") and e.get("name") == n.get("name"))
                for n in endpoints
            )
        ]
        topic["endpoints"] = kept + endpoints
        topic["updatedAt"] = at
        await self.store.put_topic(topic)
        return web.Response(status=200)

    async def _topic_remove(self, request: web.Request) -> web.Response:
        name = self._group_name(request)
        gone = await self._endpoints_of(request)
        topic = await self.store.get_topic(name)
        if topic is None:
            raise NotFound(f"url group {name!r} not found")
        topic["endpoints"] = [
            e
            for e in topic["endpoints"]
            if not any(
                ("url" in g and g["url"] == e["url"])
                or ("name" in g and g["name"] == e.get("name"))
                for g in gone
            )
        ]
        topic["updatedAt"] = now_ms()
        if topic["endpoints"]:
            await self.store.put_topic(topic)
        else:  # QStash drops a URL group with no endpoint left
            await self.store.delete_topic(name)
        return web.Response(status=200)

    async def _topic_get(self, request: web.Request) -> web.Response:
        name = self._group_name(request)
        topic = await self.store.get_topic(name)
        if topic is None:
            raise NotFound(f"url group {name!r} not found")
        return web.json_response(topic)

    async def _topic_list(self, _request: web.Request) -> web.Response:
        return web.json_response(await self.store.list_topics())

    async def _topic_delete(self, request: web.Request) -> web.Response:
        if not await self.store.delete_topic(self._group_name(request)):
            raise NotFound("url group not found")
        return web.Response(status=200)

    # ------------------------------------------------------------ schedules

    async def _schedule_create(self, request: web.Request) -> web.Response:
        destination = request.raw_path[len(SCHEDULE_PREFIX) :]
        headers = request.headers
        cron = headers.get("Upstash-Cron", "").strip()
        at = now_ms()
        try:
            virtual_next = next_cron_ms(cron, at)
        except ValueError as exc:
            raise PublishError(f"invalid Upstash-Cron header: {exc}") from None
        if _is_group(destination):
            if not GROUP_NAME.fullmatch(destination):
                raise PublishError(f"invalid destination {destination!r}")
            if await self.store.get_topic(destination) is None:
                raise NotFound(f"url group {destination!r} not found")
            check_url = "http://127.0.0.1/"
        else:
            check_url = destination
        forwarded = {
            k: v
            for k, v in headers.items()
            if k.lower().startswith("upstash-") or k.lower() == "content-type"
        }
        for name in ("Upstash-Cron", "Upstash-Schedule-Id"):
            forwarded = {k: v for k, v in forwarded.items() if k.lower() != name.lower()}
        body = await request.read()
        check = parse_publish(
            "check", check_url, forwarded, body, now_ms=at, loopback_only=self.config.loopback_only
        )
        schedule_id = headers.get("Upstash-Schedule-Id") or new_id("scd")
        if not GROUP_NAME.fullmatch(schedule_id):
            raise PublishError(f"invalid Upstash-Schedule-Id header: {schedule_id!r}")
        earlier = await self.store.get_schedule(schedule_id)
        next_ms = at + round((virtual_next - at) * self.scheduler.time_scale)
        schedule: dict[str, Any] = {
            "scheduleId": schedule_id,
            "destination": destination,
            "cron": " ".join(cron.split()),
            "createdAt": earlier["createdAt"] if earlier else at,
            "method": check.method,
            "retries": check.max_retries,
            "isPaused": False,
            "publishHeaders": forwarded,
            "bodyB64": base64.b64encode(body).decode("ascii"),
            "virtualNext": virtual_next,
            "nextScheduleTime": next_ms,
        }
        await self.store.put_schedule(schedule, next_ms)
        self.scheduler.wake()
        return web.json_response({"scheduleId": schedule_id})

    def _schedule_view(self, schedule: Mapping[str, object]) -> dict[str, object]:
        headers = schedule.get("publishHeaders")
        assert isinstance(headers, dict)
        check = parse_publish(
            "check", "http://127.0.0.1/", headers, b"", now_ms=0, loopback_only=False
        )
        view: dict[str, object] = {
            k: schedule[k]
            for k in (
                "scheduleId",
                "destination",
                "cron",
                "createdAt",
                "method",
                "retries",
                "isPaused",
                "nextScheduleTime",
                "lastScheduleTime",
                "error",
            )
            if schedule.get(k) is not None
        }
        if schedule.get("isPaused"):
            view.pop("nextScheduleTime", None)
        view["header"] = {k: [v] for k, v in check.headers.items()}
        try:
            view["body"] = base64_text(str(schedule["bodyB64"]))
        except UnicodeDecodeError:
            view["bodyBase64"] = schedule["bodyB64"]
        for key, value in (
            ("callback", check.callback),
            ("failureCallback", check.failure_callback),
            ("timeout", int(check.timeout_s) if check.timeout_s else None),
            ("retryDelayExpression", check.retry_delay),
            ("label", check.label),
            ("flowControlKey", check.flow_key),
            ("rate", check.flow_rate),
            ("period", check.flow_period_s),
            ("parallelism", check.flow_parallelism),
        ):
            if value is not None:
                view[key] = value
        return view

    async def _schedule_of(self, request: web.Request) -> dict[str, object]:
        schedule = await self.store.get_schedule(request.match_info["id"])
        if schedule is None:
            raise NotFound("schedule not found")
        return schedule

    async def _schedule_get(self, request: web.Request) -> web.Response:
        return web.json_response(self._schedule_view(await self._schedule_of(request)))

    async def _schedule_list(self, _request: web.Request) -> web.Response:
        schedules = await self.store.list_schedules()
        return web.json_response([self._schedule_view(s) for s in schedules])

    async def _schedule_delete(self, request: web.Request) -> web.Response:
        if not await self.store.delete_schedule(request.match_info["id"]):
            raise NotFound("schedule not found")
        return web.Response(status=200)

    async def _schedule_pause(self, request: web.Request) -> web.Response:
        schedule = await self._schedule_of(request)
        schedule["isPaused"] = True
        await self.store.put_schedule(schedule, None)
        return web.Response(status=200)

    async def _schedule_resume(self, request: web.Request) -> web.Response:
        schedule = await self._schedule_of(request)
        if schedule.get("isPaused"):
            at = now_ms()
            virtual_next = next_cron_ms(str(schedule["cron"]), at)
            schedule["isPaused"] = False
            schedule["virtualNext"] = virtual_next
            next_ms = at + round((virtual_next - at) * self.scheduler.time_scale)
            schedule["nextScheduleTime"] = next_ms
            await self.store.put_schedule(schedule, next_ms)
            self.scheduler.wake()
        return web.Response(status=200)

    async def _fire_schedule(self, schedule: dict[str, object]) -> None:
        """One run of a schedule: a publish like any other, marked with its schedule id."""
        headers = schedule["publishHeaders"]
        assert isinstance(headers, dict)
        body = base64.b64decode(str(schedule["bodyB64"]))
        _, answer = await self._accept(
            str(schedule["destination"]), headers, body, schedule_id=str(schedule["scheduleId"])
        )
        items = answer if isinstance(answer, list) else [answer]
        schedule["lastScheduleStates"] = {
            str(item["messageId"]): "IN_PROGRESS" for item in items if isinstance(item, dict)
        }

    # ------------------------------------------------------------ logs, flow control

    async def _events(self, request: web.Request) -> web.Response:
        try:
            cursor = int(request.query.get("cursor", "0") or "0")
            count = max(1, min(1000, int(request.query.get("count", str(PAGE)))))
        except ValueError:
            return _error("cursor and count must be integers", 400)
        found = await self.store.events(request.query.get("messageId"), request.query.get("state"))
        page = found[cursor : cursor + count]
        answer: dict[str, object] = {"events": page}
        if cursor + count < len(found):
            answer["cursor"] = str(cursor + count)
        return web.json_response(answer)

    async def _flow_info(self, key: str) -> dict[str, object] | None:
        now = now_ms()
        limits, waiting = await self.store.flow_info(key, now)
        if limits is None:
            return None
        active = self.scheduler.active(key)
        period_s = int(limits.get("period") or 0)
        window_ms = max(1, self.scheduler.scaled_ms(period_s or 1))
        starts = await self.store.rate_starts(key, now - window_ms + 1)
        return {
            "flowControlKey": key,
            "waitListSize": waiting,
            "parallelismMax": int(limits.get("parallelism") or 0),
            "parallelismCount": active,
            "rateMax": int(limits.get("rate") or 0),
            "rateCount": len(starts),
            "ratePeriod": period_s,
            "ratePeriodStart": starts[0] if starts else 0,
            "isPaused": False,
        }

    async def _flow_control(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        info = await self._flow_info(key)
        if info is None:
            raise NotFound(f"flow control key {key!r} not found")
        return web.json_response(info)

    async def _flow_control_list(self, _request: web.Request) -> web.Response:
        infos = [await self._flow_info(key) for key in await self.store.flow_keys()]
        return web.json_response([i for i in infos if i is not None])


def base64_text(value: str) -> str:
    """Decodes base64 to UTF-8 text; `UnicodeDecodeError` for binary content."""
    return base64.b64decode(value).decode("utf-8")
