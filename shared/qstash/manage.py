"""QStash's management API as pure functions: arguments -> `HttpRequest`, `HttpResponse` -> data.

URL groups, schedules, messages, the DLQ, logs (events) and flow-control info; the wire
format is the one the official SDKs speak. No client, transport or clock here (see
`shared.qstash.admin.QStashAdmin` for the async client).

    request = build_create_schedule(base, token, "https://app.example.com/api/cron/x",
                                    "*/5 * * * *", schedule_id="flush")
    schedule_id = parse_schedule_id(await transport.send(request))
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from shared.errors import QStashError
from shared.http.transport import HttpRequest, HttpResponse
from shared.qstash.publish import (
    PublishOptions,
    api_error,
    api_request,
    check_destination,
    json_body,
    json_payload,
    publish_headers,
)

_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")  # a URL group name or schedule id
_CRON_FIELD = re.compile(r"[0-9A-Za-z*/,?#LW-]+")
LOG_STATES = frozenset(
    {
        "CREATED",
        "ACTIVE",
        "RETRY",
        "ERROR",
        "DELIVERED",
        "FAILED",
        "CANCEL_REQUESTED",
        "CANCELED",
        "IN_PROGRESS",
    }
)
DLQ_FILTERS = {
    "message_id": "messageId",
    "url": "url",
    "url_group": "topicName",
    "schedule_id": "scheduleId",
    "response_status": "responseStatus",
    "label": "label",
}


# ---------------------------------------------------------------- request building


def _segment(name: str, value: str) -> str:
    """One path segment: non-empty text, percent-encoded (no '/', no traversal)."""
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ValueError(f"{name} must be a non-empty printable string, got {value!r}")
    return quote(value, safe="")


def _page(cursor: str | None, count: int | None, *, most: int) -> dict[str, str]:
    """The paging part of a list query: `cursor`, and `count` (an integer 1..`most`)."""
    query: dict[str, str] = {}
    if cursor is not None:
        query["cursor"] = str(cursor)
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= most:
            raise ValueError(f"count must be an integer 1..{most}, got {count!r}")
        query["count"] = str(count)
    return query


def check_group_name(name: str) -> str:
    """A URL group name: 1-128 of letters, digits, '.', '_', '-' (never a URL)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"url group name must match [A-Za-z0-9._-]{{1,128}}, got {name!r}")
    return name


def check_cron(cron: str) -> str:
    """A 5-field cron expression (an optional `CRON_TZ=<zone>` prefix allowed)."""
    if not isinstance(cron, str):
        raise ValueError(f"cron must be a string, got {cron!r}")
    fields = cron.split()
    if fields and fields[0].startswith("CRON_TZ="):
        fields = fields[1:]
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
        raise ValueError(f"cron must have 5 fields like '*/5 * * * *', got {cron!r}")
    return " ".join(cron.split())


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of a URL group: its URL and an optional name."""

    url: str
    name: str | None = None


def build_upsert_endpoints(
    base_url: str,
    token: str,
    group: str,
    endpoints: Sequence[Endpoint | str],
) -> HttpRequest:
    """`POST /v2/topics/{group}/endpoints` (creates the group when new)."""
    items: list[dict[str, str]] = []
    for endpoint in endpoints:
        e = Endpoint(endpoint) if isinstance(endpoint, str) else endpoint
        item = {"url": check_destination("endpoint url", e.url)}
        if e.name is not None:
            item["name"] = check_group_name(e.name)
        items.append(item)
    if not items:
        raise ValueError("a url group needs at least one endpoint")
    path = f"/v2/topics/{check_group_name(group)}/endpoints"
    headers = {"Content-Type": "application/json"}
    body = json_body({"endpoints": items})
    return api_request("POST", base_url, token, path, headers=headers, body=body)


def build_remove_endpoints(
    base_url: str,
    token: str,
    group: str,
    endpoints: Sequence[Endpoint | str],
) -> HttpRequest:
    """`DELETE /v2/topics/{group}/endpoints` with the endpoints (by url or name) to remove."""
    items: list[dict[str, str]] = []
    for endpoint in endpoints:
        e = Endpoint(endpoint) if isinstance(endpoint, str) else endpoint
        item = {}
        if e.url:
            item["url"] = check_destination("endpoint url", e.url)
        if e.name is not None:
            item["name"] = check_group_name(e.name)
        items.append(item)
    if not items:
        raise ValueError("name at least one endpoint to remove")
    path = f"/v2/topics/{check_group_name(group)}/endpoints"
    headers = {"Content-Type": "application/json"}
    body = json_body({"endpoints": items})
    return api_request("DELETE", base_url, token, path, headers=headers, body=body)


def build_get_url_group(base_url: str, token: str, group: str) -> HttpRequest:
    """`GET /v2/topics/{group}`."""
    return api_request("GET", base_url, token, f"/v2/topics/{check_group_name(group)}")


def build_list_url_groups(base_url: str, token: str) -> HttpRequest:
    """`GET /v2/topics`."""
    return api_request("GET", base_url, token, "/v2/topics")


def build_delete_url_group(base_url: str, token: str, group: str) -> HttpRequest:
    """`DELETE /v2/topics/{group}`."""
    return api_request("DELETE", base_url, token, f"/v2/topics/{check_group_name(group)}")


def build_publish_to_group(
    base_url: str,
    token: str,
    group: str,
    body: bytes,
    options: PublishOptions,
) -> HttpRequest:
    """`POST /v2/publish/{group}`: one message per endpoint of the group."""
    path = f"/v2/publish/{check_group_name(group)}"
    headers = publish_headers(options)
    return api_request("POST", base_url, token, path, headers=headers, body=body)


def schedule_headers(
    cron: str, options: PublishOptions, schedule_id: str | None = None
) -> dict[str, str]:
    """`Upstash-Cron` plus the publish headers a schedule accepts."""
    if options.deduplication_id is not None or options.content_based_deduplication:
        raise ValueError("schedules do not take deduplication options")
    if options.not_before is not None:
        raise ValueError("schedules do not take not_before (use the cron)")
    headers = {"Upstash-Cron": check_cron(cron), **publish_headers(options)}
    if schedule_id is not None:
        headers["Upstash-Schedule-Id"] = check_group_name(schedule_id)
    return headers


def build_create_schedule(
    base_url: str,
    token: str,
    destination: str,
    cron: str,
    body: bytes = b"",
    options: PublishOptions | None = None,
    *,
    schedule_id: str | None = None,
) -> HttpRequest:
    """`POST /v2/schedules/{destination}`; destination is a URL or a URL group name.

    With `schedule_id`, an existing schedule of that id is replaced (an upsert).
    """
    if "://" in destination:
        check_destination("destination", destination)
    else:
        check_group_name(destination)
    headers = schedule_headers(cron, options or PublishOptions(), schedule_id)
    path = f"/v2/schedules/{destination}"
    return api_request("POST", base_url, token, path, headers=headers, body=body)


def _schedule_path(schedule_id: str, action: str = "") -> str:
    return f"/v2/schedules/{_segment('schedule_id', schedule_id)}{action}"


def build_get_schedule(base_url: str, token: str, schedule_id: str) -> HttpRequest:
    """`GET /v2/schedules/{id}`."""
    return api_request("GET", base_url, token, _schedule_path(schedule_id))


def build_list_schedules(base_url: str, token: str) -> HttpRequest:
    """`GET /v2/schedules`."""
    return api_request("GET", base_url, token, "/v2/schedules")


def build_delete_schedule(base_url: str, token: str, schedule_id: str) -> HttpRequest:
    """`DELETE /v2/schedules/{id}`."""
    return api_request("DELETE", base_url, token, _schedule_path(schedule_id))


def build_pause_schedule(base_url: str, token: str, schedule_id: str) -> HttpRequest:
    """`PATCH /v2/schedules/{id}/pause`."""
    return api_request("PATCH", base_url, token, _schedule_path(schedule_id, "/pause"))


def build_resume_schedule(base_url: str, token: str, schedule_id: str) -> HttpRequest:
    """`PATCH /v2/schedules/{id}/resume`."""
    return api_request("PATCH", base_url, token, _schedule_path(schedule_id, "/resume"))


def build_get_message(base_url: str, token: str, message_id: str) -> HttpRequest:
    """`GET /v2/messages/{id}` (a message not yet delivered)."""
    path = f"/v2/messages/{_segment('message_id', message_id)}"
    return api_request("GET", base_url, token, path)


def build_cancel_message(base_url: str, token: str, message_id: str) -> HttpRequest:
    """`DELETE /v2/messages/{id}`."""
    path = f"/v2/messages/{_segment('message_id', message_id)}"
    return api_request("DELETE", base_url, token, path)


def build_list_dlq(
    base_url: str,
    token: str,
    *,
    cursor: str | None = None,
    count: int | None = None,
    filters: Mapping[str, str | int] | None = None,
) -> HttpRequest:
    """`GET /v2/dlq?cursor=..&count=..&<filters>`; filters use `DLQ_FILTERS`' names."""
    query = _page(cursor, count, most=100)
    for name, value in (filters or {}).items():
        if name not in DLQ_FILTERS:
            raise ValueError(f"unknown dlq filter {name!r} (one of {sorted(DLQ_FILTERS)})")
        query[DLQ_FILTERS[name]] = str(value)
    return api_request("GET", base_url, token, "/v2/dlq", query=query)


def build_get_dlq(base_url: str, token: str, dlq_id: str) -> HttpRequest:
    """`GET /v2/dlq/{dlqId}`."""
    return api_request("GET", base_url, token, f"/v2/dlq/{_segment('dlq_id', dlq_id)}")


def build_delete_dlq(base_url: str, token: str, dlq_id: str) -> HttpRequest:
    """`DELETE /v2/dlq/{dlqId}`."""
    return api_request("DELETE", base_url, token, f"/v2/dlq/{_segment('dlq_id', dlq_id)}")


def build_retry_dlq(
    base_url: str,
    token: str,
    dlq_id: str,
    options: PublishOptions | None = None,
) -> HttpRequest:
    """`POST /v2/dlq/retry/{dlqId}`; `options` override the dead message's (e.g. retries)."""
    path = f"/v2/dlq/retry/{_segment('dlq_id', dlq_id)}"
    headers = publish_headers(options) if options is not None else {}
    return api_request("POST", base_url, token, path, headers=headers)


def build_list_events(
    base_url: str,
    token: str,
    *,
    message_id: str | None = None,
    state: str | None = None,
    cursor: str | None = None,
    count: int | None = None,
) -> HttpRequest:
    """`GET /v2/events` (QStash's logs), newest first, filtered by message or state."""
    query: dict[str, str] = {}
    if message_id is not None:
        _segment("message_id", message_id)
        query["messageId"] = message_id
    if state is not None:
        if state not in LOG_STATES:
            raise ValueError(f"state must be one of {sorted(LOG_STATES)}, got {state!r}")
        query["state"] = state
    query.update(_page(cursor, count, most=1000))
    return api_request("GET", base_url, token, "/v2/events", query=query)


def build_get_flow_control(base_url: str, token: str, key: str) -> HttpRequest:
    """`GET /v2/flowControl/{key}`: the key's wait list, in-flight count and rate window."""
    path = f"/v2/flowControl/{_segment('key', key)}"
    return api_request("GET", base_url, token, path)


# ---------------------------------------------------------------- response parsing


def expect_ok(response: HttpResponse) -> None:
    """For answers without a body we need (delete, cancel, pause): 2xx or a `QStashError`."""
    if not 200 <= response.status < 300:
        raise api_error(response)


def _dict(value: object, what: str, status: int = 200) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise QStashError(status, f"{what} is not a JSON object")
    return value


def _list(response: HttpResponse, what: str) -> list[Any]:
    """A JSON array answer, or a `QStashError` saying what was expected."""
    payload = json_payload(response)
    if not isinstance(payload, list):
        raise QStashError(response.status, f"expected a list {what}")
    return payload


def _field(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise QStashError(200, f"response field {name!r} is missing or malformed")
    return value


def _opt(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(name)
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _headers(value: object) -> dict[str, str]:
    """`{"Name": ["v1", "v2"]}` (QStash's shape) -> `{"Name": "v1, v2"}`."""
    if not isinstance(value, dict):
        return {}
    out: dict[str, str] = {}
    for name, values in value.items():
        if isinstance(values, list):
            out[str(name)] = ", ".join(str(v) for v in values)
        elif isinstance(values, str):
            out[str(name)] = values
    return out


@dataclass(frozen=True, slots=True)
class UrlGroup:
    """A URL group (QStash's "topic"): publishing to it sends one message per endpoint."""

    name: str
    created_at: int
    updated_at: int
    endpoints: tuple[Endpoint, ...]


def _url_group(data: object) -> UrlGroup:
    d = _dict(data, "url group")
    endpoints = []
    for e in d.get("endpoints") or []:
        item = _dict(e, "endpoint")
        endpoints.append(Endpoint(_field(item, "url", str), _opt(item, "name", str)))
    return UrlGroup(
        name=_field(d, "name", str),
        created_at=_opt(d, "createdAt", int) or 0,
        updated_at=_opt(d, "updatedAt", int) or 0,
        endpoints=tuple(endpoints),
    )


def parse_url_group(response: HttpResponse) -> UrlGroup:
    return _url_group(json_payload(response))


def parse_url_groups(response: HttpResponse) -> list[UrlGroup]:
    return [_url_group(item) for item in _list(response, "of url groups")]


@dataclass(frozen=True, slots=True)
class GroupPublishResult:
    """One message of a URL-group publish: its id and the endpoint it goes to."""

    message_id: str
    url: str
    deduplicated: bool = False


def parse_group_publish(response: HttpResponse) -> list[GroupPublishResult]:
    """A URL-group publish answers a list, one item per endpoint."""
    results = []
    for item in _list(response, "(one message per endpoint)"):
        d = _dict(item, "publish result")
        results.append(
            GroupPublishResult(
                _field(d, "messageId", str),
                _field(d, "url", str),
                bool(d.get("deduplicated", False)) or response.status == 202,
            )
        )
    return results


@dataclass(frozen=True, slots=True)
class FlowControlSettings:
    """The flow-control key and limits a message or schedule carries."""

    key: str
    parallelism: int | None
    rate: int | None
    period: int | None  # seconds


def _flow(d: Mapping[str, Any]) -> FlowControlSettings | None:
    key = _opt(d, "flowControlKey", str)
    if key is None:
        return None
    return FlowControlSettings(
        key, _opt(d, "parallelism", int), _opt(d, "rate", int), _opt(d, "period", int)
    )


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule: QStash publishes its message to `destination` on every `cron` tick."""

    schedule_id: str
    destination: str
    cron: str
    created_at: int
    method: str
    paused: bool
    retries: int | None
    body: str | None
    headers: dict[str, str]
    flow_control: FlowControlSettings | None
    next_schedule_time: int | None
    last_schedule_time: int | None
    callback: str | None
    failure_callback: str | None
    label: str | None


def _schedule(data: object) -> Schedule:
    d = _dict(data, "schedule")
    return Schedule(
        schedule_id=_field(d, "scheduleId", str),
        destination=_field(d, "destination", str),
        cron=_field(d, "cron", str),
        created_at=_opt(d, "createdAt", int) or 0,
        method=_opt(d, "method", str) or "POST",
        paused=d.get("isPaused") is True,
        retries=_opt(d, "retries", int),
        body=_opt(d, "body", str),
        headers=_headers(d.get("header")),
        flow_control=_flow(d),
        next_schedule_time=_opt(d, "nextScheduleTime", int),
        last_schedule_time=_opt(d, "lastScheduleTime", int),
        callback=_opt(d, "callback", str),
        failure_callback=_opt(d, "failureCallback", str),
        label=_opt(d, "label", str),
    )


def parse_schedule_id(response: HttpResponse) -> str:
    """A schedule create answers `{"scheduleId": ...}`."""
    return str(_field(_dict(json_payload(response), "answer"), "scheduleId", str))


def parse_schedule(response: HttpResponse) -> Schedule:
    return _schedule(json_payload(response))


def parse_schedules(response: HttpResponse) -> list[Schedule]:
    return [_schedule(item) for item in _list(response, "of schedules")]


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """A message QStash holds (pending, or dead in the DLQ)."""

    message_id: str
    url: str
    method: str
    body: str | None
    body_base64: str | None
    headers: dict[str, str]
    max_retries: int | None
    not_before: int | None
    created_at: int | None
    url_group: str | None
    endpoint: str | None
    schedule_id: str | None
    flow_control: FlowControlSettings | None
    label: str | None


def _message(d: Mapping[str, Any]) -> MessageInfo:
    return MessageInfo(
        message_id=_field(d, "messageId", str),
        url=_field(d, "url", str),
        method=_opt(d, "method", str) or "POST",
        body=_opt(d, "body", str),
        body_base64=_opt(d, "bodyBase64", str),
        headers=_headers(d.get("header")),
        max_retries=_opt(d, "maxRetries", int),
        not_before=_opt(d, "notBefore", int),
        created_at=_opt(d, "createdAt", int),
        url_group=_opt(d, "topicName", str),
        endpoint=_opt(d, "endpointName", str),
        schedule_id=_opt(d, "scheduleId", str),
        flow_control=_flow(d),
        label=_opt(d, "label", str),
    )


def parse_message(response: HttpResponse) -> MessageInfo:
    return _message(_dict(json_payload(response), "message"))


@dataclass(frozen=True, slots=True)
class DlqMessage:
    """A dead-lettered message and the last answer its destination gave."""

    dlq_id: str
    message: MessageInfo
    response_status: int | None
    response_body: str | None


@dataclass(frozen=True, slots=True)
class DlqPage:
    """One page of the DLQ; pass `cursor` back for the next page (None: the last page)."""

    messages: list[DlqMessage]
    cursor: str | None


def _dlq_message(data: object) -> DlqMessage:
    d = _dict(data, "dlq message")
    return DlqMessage(
        dlq_id=_field(d, "dlqId", str),
        message=_message(d),
        response_status=_opt(d, "responseStatus", int),
        response_body=_opt(d, "responseBody", str),
    )


def parse_dlq_message(response: HttpResponse) -> DlqMessage:
    return _dlq_message(json_payload(response))


def parse_dlq_page(response: HttpResponse) -> DlqPage:
    d = _dict(json_payload(response), "dlq page", response.status)
    items = d.get("messages") or []
    if not isinstance(items, list):
        raise QStashError(response.status, "dlq 'messages' is not a list")
    cursor = d.get("cursor")
    return DlqPage(
        [_dlq_message(item) for item in items],
        str(cursor) if cursor not in (None, "") else None,
    )


def parse_retry(response: HttpResponse) -> str:
    """A DLQ retry answers `{"messageId"}`: the id of the new message."""
    return str(_field(_dict(json_payload(response), "answer"), "messageId", str))


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One state change of a message (CREATED, ACTIVE, RETRY, DELIVERED, FAILED, ...)."""

    time: int
    message_id: str
    state: str
    url: str | None
    error: str | None
    next_delivery_time: int | None
    response_status: int | None
    url_group: str | None
    schedule_id: str | None


@dataclass(frozen=True, slots=True)
class LogPage:
    """One page of log events, newest first; `cursor` for the next page (None: the last)."""

    events: list[LogEvent]
    cursor: str | None


def parse_log_page(response: HttpResponse) -> LogPage:
    d = _dict(json_payload(response), "events page", response.status)
    items = d.get("events") or []
    if not isinstance(items, list):
        raise QStashError(response.status, "'events' is not a list")
    events = []
    for item in items:
        e = _dict(item, "event")
        events.append(
            LogEvent(
                time=_field(e, "time", int),
                message_id=_field(e, "messageId", str),
                state=_field(e, "state", str),
                url=_opt(e, "url", str),
                error=_opt(e, "error", str),
                next_delivery_time=_opt(e, "nextDeliveryTime", int),
                response_status=_opt(e, "responseStatus", int),
                url_group=_opt(e, "topicName", str),
                schedule_id=_opt(e, "scheduleId", str),
            )
        )
    cursor = d.get("cursor")
    return LogPage(events, str(cursor) if cursor not in (None, "") else None)


@dataclass(frozen=True, slots=True)
class FlowControlInfo:
    """The live state of one flow-control key."""

    key: str
    wait_list_size: int
    parallelism_max: int
    parallelism_count: int
    rate_max: int
    rate_count: int
    rate_period: int
    rate_period_start: int
    paused: bool


def parse_flow_control_info(response: HttpResponse) -> FlowControlInfo:
    d = _dict(json_payload(response), "flow control", response.status)
    return FlowControlInfo(
        key=_field(d, "flowControlKey", str),
        wait_list_size=_opt(d, "waitListSize", int) or 0,
        parallelism_max=_opt(d, "parallelismMax", int) or 0,
        parallelism_count=_opt(d, "parallelismCount", int) or 0,
        rate_max=_opt(d, "rateMax", int) or 0,
        rate_count=_opt(d, "rateCount", int) or 0,
        rate_period=_opt(d, "ratePeriod", int) or 0,
        rate_period_start=_opt(d, "ratePeriodStart", int) or 0,
        paused=d.get("isPaused") is True,
    )
