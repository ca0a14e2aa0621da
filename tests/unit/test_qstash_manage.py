"""Pure QStash management builders and parsers (URL groups, schedules, messages, DLQ, logs,
flow control): tables of inputs -> exact requests, answers -> data, bad input -> ValueError."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest

from shared.errors import ConfigError, QStashError, TransportError, TransportTimeout
from shared.http.transport import HttpRequest, HttpResponse
from shared.qstash import FlowControl, PublishOptions, QStashAdmin, publish_headers
from shared.qstash import manage as m
from shared.qstash.flow_control import (
    flow_control_headers,
    parse_flow_control_value,
    parse_rate,
)

B = "https://qstash.upstash.io"
T = "tok_secret"
URL = "https://app.example.com/api/cron/flush-outbox"
AUTH = {"Authorization": f"Bearer {T}"}

FLOW_TABLE: list[tuple[FlowControl, str]] = [
    (FlowControl("email", parallelism=2), "parallelism=2"),
    (FlowControl("email", rate=2), "rate=2"),
    (FlowControl("email", rate=2, period="1s"), "rate=2, period=1s"),
    (FlowControl("email", rate=10, period=60), "rate=10, period=1m"),
    (FlowControl("email", rate=1, period="1500ms"), "rate=1, period=2s"),
    (
        FlowControl("a.b:c-d_e", rate=3, period="1h", parallelism=1),
        "parallelism=1, rate=3, period=1h",
    ),
]


@pytest.mark.parametrize(("control", "value"), FLOW_TABLE)
def test_flow_control_headers(control: FlowControl, value: str) -> None:
    """A FlowControl becomes the key header and the SDKs' `parallelism=, rate=, period=` value."""
    assert flow_control_headers(control) == {
        "Upstash-Flow-Control-Key": control.key,
        "Upstash-Flow-Control-Value": value,
    }
    assert (
        publish_headers(PublishOptions(flow_control=control))["Upstash-Flow-Control-Value"] == value
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: FlowControl("", rate=1),
        lambda: FlowControl("has space", rate=1),
        lambda: FlowControl("k"),
        lambda: FlowControl("k", rate=0),
        lambda: FlowControl("k", rate=True),  # type: ignore[arg-type]
        lambda: FlowControl("k", parallelism=-1),
        lambda: FlowControl("k", parallelism=1, period="1s"),
        lambda: FlowControl("k", rate=1, period="500ms"),
        lambda: FlowControl("k", rate=1, period="soon"),
        lambda: FlowControl("k\r\nX-Evil: 1", rate=1),
    ],
)
def test_bad_flow_control_is_refused(make: Callable[[], FlowControl]) -> None:
    """Invalid keys, limits and periods raise ValueError before anything is sent."""
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("2/1s", (2, 1)),
        (" 10 / 1m ", (10, 60)),
        ("1/90", (1, 90)),
    ],
)
def test_parse_rate_setting(text: str, parsed: tuple[int, int]) -> None:
    """A rate setting `<count>/<period>` parses to (count, whole seconds)."""
    assert parse_rate(text) == parsed


@pytest.mark.parametrize("text", ["", "2", "0/1s", "x/1s", "2/0s", "2/", "-1/1s"])
def test_parse_rate_refuses_malformed(text: str) -> None:
    """A malformed rate setting raises ValueError."""
    with pytest.raises(ValueError):
        parse_rate(text)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("parallelism=2", {"parallelism": 2}),
        ("rate=2, period=1s", {"rate": 2, "period": 1}),
        ("parallelism=1,rate=3,period=1h", {"parallelism": 1, "rate": 3, "period": 3600}),
    ],
)
def test_parse_flow_control_value(text: str, parsed: dict[str, int]) -> None:
    """The value header parses back to its numbers (periods in seconds)."""
    assert parse_flow_control_value(text) == parsed


@pytest.mark.parametrize(
    "text", ["", "rate=", "rate=0", "rate=x", "speed=2", "rate=1, rate=2", "period=1s"]
)
def test_parse_flow_control_value_refuses(text: str) -> None:
    """A malformed value header raises ValueError."""
    with pytest.raises(ValueError):
        parse_flow_control_value(text)


REQUESTS: list[tuple[HttpRequest, str, str, dict[str, str], object]] = [
    (m.build_list_url_groups(B, T), "GET", f"{B}/v2/topics", {}, None),
    (m.build_get_url_group(B, T, "g1"), "GET", f"{B}/v2/topics/g1", {}, None),
    (m.build_delete_url_group(B, T, "g1"), "DELETE", f"{B}/v2/topics/g1", {}, None),
    (
        m.build_upsert_endpoints(B, T, "g1", [URL, m.Endpoint(URL + "/2", "two")]),
        "POST",
        f"{B}/v2/topics/g1/endpoints",
        {"Content-Type": "application/json"},
        {"endpoints": [{"url": URL}, {"url": URL + "/2", "name": "two"}]},
    ),
    (
        m.build_remove_endpoints(B, T, "g1", [m.Endpoint("", "two")]),
        "DELETE",
        f"{B}/v2/topics/g1/endpoints",
        {"Content-Type": "application/json"},
        {"endpoints": [{"name": "two"}]},
    ),
    (
        m.build_publish_to_group(
            B, T, "g1", b"{}", PublishOptions(retries=1, content_type="application/json")
        ),
        "POST",
        f"{B}/v2/publish/g1",
        {"Upstash-Retries": "1", "Content-Type": "application/json"},
        {},
    ),
    (
        m.build_create_schedule(B, T, URL, "*/5 * * * *"),
        "POST",
        f"{B}/v2/schedules/{URL}",
        {"Upstash-Cron": "*/5 * * * *"},
        None,
    ),
    (
        m.build_create_schedule(
            B,
            T,
            "g1",
            "CRON_TZ=Europe/Paris 0  9 * * 1-5",
            b"x",
            PublishOptions(retries=2, flow_control=FlowControl("k", parallelism=1)),
            schedule_id="flush-outbox",
        ),
        "POST",
        f"{B}/v2/schedules/g1",
        {
            "Upstash-Cron": "CRON_TZ=Europe/Paris 0 9 * * 1-5",
            "Upstash-Retries": "2",
            "Upstash-Flow-Control-Key": "k",
            "Upstash-Flow-Control-Value": "parallelism=1",
            "Upstash-Schedule-Id": "flush-outbox",
        },
        None,
    ),
    (m.build_get_schedule(B, T, "scd_1"), "GET", f"{B}/v2/schedules/scd_1", {}, None),
    (m.build_list_schedules(B, T), "GET", f"{B}/v2/schedules", {}, None),
    (m.build_delete_schedule(B, T, "scd_1"), "DELETE", f"{B}/v2/schedules/scd_1", {}, None),
    (m.build_pause_schedule(B, T, "scd_1"), "PATCH", f"{B}/v2/schedules/scd_1/pause", {}, None),
    (m.build_resume_schedule(B, T, "scd_1"), "PATCH", f"{B}/v2/schedules/scd_1/resume", {}, None),
    (m.build_get_message(B, T, "msg_1"), "GET", f"{B}/v2/messages/msg_1", {}, None),
    (m.build_get_message(B, T, "../keys"), "GET", f"{B}/v2/messages/..%2Fkeys", {}, None),
    (m.build_cancel_message(B, T, "msg_1"), "DELETE", f"{B}/v2/messages/msg_1", {}, None),
    (m.build_list_dlq(B, T), "GET", f"{B}/v2/dlq", {}, None),
    (
        m.build_list_dlq(B, T, cursor="7", count=10, filters={"url": URL, "response_status": 500}),
        "GET",
        f"{B}/v2/dlq?cursor=7&count=10&url=https%3A%2F%2Fapp.example.com%2Fapi%2Fcron%2Fflush-outbox&responseStatus=500",
        {},
        None,
    ),
    (m.build_get_dlq(B, T, "dlq_1"), "GET", f"{B}/v2/dlq/dlq_1", {}, None),
    (m.build_delete_dlq(B, T, "dlq_1"), "DELETE", f"{B}/v2/dlq/dlq_1", {}, None),
    (m.build_retry_dlq(B, T, "dlq_1"), "POST", f"{B}/v2/dlq/retry/dlq_1", {}, None),
    (
        m.build_retry_dlq(B, T, "dlq_1", PublishOptions(retries=0)),
        "POST",
        f"{B}/v2/dlq/retry/dlq_1",
        {"Upstash-Retries": "0"},
        None,
    ),
    (m.build_list_events(B, T), "GET", f"{B}/v2/events", {}, None),
    (
        m.build_list_events(B, T, message_id="msg_1", state="FAILED", count=5),
        "GET",
        f"{B}/v2/events?messageId=msg_1&state=FAILED&count=5",
        {},
        None,
    ),
    (m.build_get_flow_control(B, T, "email"), "GET", f"{B}/v2/flowControl/email", {}, None),
]


@pytest.mark.parametrize(("request_", "method", "url", "headers", "body"), REQUESTS)
def test_builders_make_the_sdk_wire_format(
    request_: HttpRequest, method: str, url: str, headers: dict[str, str], body: object
) -> None:
    """Each builder yields the method, URL, headers and JSON body the official SDKs send."""
    assert (request_.method, request_.url) == (method, url)
    assert request_.headers == {**AUTH, **headers}
    if body is None:
        assert request_.body in (b"", b"x")
    else:
        assert json.loads(request_.body or b"{}") == body


@pytest.mark.parametrize(
    "make",
    [
        lambda: m.build_get_url_group(B, T, "has/slash"),
        lambda: m.build_get_url_group(B, T, "https://x.example"),
        lambda: m.build_upsert_endpoints(B, T, "g", []),
        lambda: m.build_upsert_endpoints(B, T, "g", ["ftp://x"]),
        lambda: m.build_upsert_endpoints(B, T, "g", [m.Endpoint(URL, "bad name")]),
        lambda: m.build_create_schedule(B, T, URL, "* * * *"),
        lambda: m.build_create_schedule(B, T, URL, "* * * * * *"),
        lambda: m.build_create_schedule(B, T, URL, "* * * * ;rm"),
        lambda: m.build_create_schedule(B, T, "not a url", "* * * * *"),
        lambda: m.build_create_schedule(
            B, T, URL, "* * * * *", options=PublishOptions(deduplication_id="d")
        ),
        lambda: m.build_create_schedule(
            B, T, URL, "* * * * *", options=PublishOptions(not_before=1)
        ),
        lambda: m.build_create_schedule(B, T, URL, "* * * * *", schedule_id="a b"),
        lambda: m.build_get_message(B, T, ""),
        lambda: m.build_get_schedule(B, T, "x\ny"),
        lambda: m.build_list_dlq(B, T, count=0),
        lambda: m.build_list_dlq(B, T, count=101),
        lambda: m.build_list_dlq(B, T, filters={"password": "x"}),
        lambda: m.build_list_events(B, T, state="LOST"),
        lambda: m.build_list_events(B, T, count=True),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_raise_value_error(make: Callable[[], HttpRequest]) -> None:
    """Malformed names, crons, ids, counts and filters never reach the network."""
    with pytest.raises(ValueError):
        make()


def ok(payload: object, status: int = 200) -> HttpResponse:
    return HttpResponse(status, {}, json.dumps(payload).encode())


def test_parsers_read_the_documented_shapes() -> None:
    """Schedules, groups, messages, DLQ pages, logs and flow-control info parse from JSON."""
    schedule = m.parse_schedule(
        ok(
            {
                "scheduleId": "s1",
                "destination": URL,
                "cron": "*/5 * * * *",
                "createdAt": 1,
                "method": "POST",
                "retries": 3,
                "isPaused": True,
                "header": {"Content-Type": ["application/json"]},
                "body": "{}",
                "flowControlKey": "k",
                "parallelism": 1,
                "nextScheduleTime": 5,
            }
        )
    )
    assert schedule.paused and schedule.retries == 3 and schedule.next_schedule_time == 5
    assert schedule.headers == {"Content-Type": "application/json"}
    assert schedule.flow_control == m.FlowControlSettings("k", 1, None, None)
    assert m.parse_schedule_id(ok({"scheduleId": "s1"})) == "s1"
    group = m.parse_url_groups(
        ok([{"name": "g", "createdAt": 1, "updatedAt": 2, "endpoints": [{"url": URL}]}])
    )
    assert group[0].endpoints == (m.Endpoint(URL, None),)
    fanned = m.parse_group_publish(ok([{"messageId": "a", "url": URL}]))
    assert fanned == [m.GroupPublishResult("a", URL, False)]
    page = m.parse_dlq_page(
        ok(
            {
                "messages": [
                    {
                        "dlqId": "d1",
                        "messageId": "m1",
                        "url": URL,
                        "method": "POST",
                        "responseStatus": 500,
                        "responseBody": "boom",
                        "topicName": "g",
                    }
                ],
                "cursor": "1",
            }
        )
    )
    assert page.cursor == "1" and page.messages[0].response_status == 500
    assert page.messages[0].message.url_group == "g"
    assert m.parse_dlq_page(ok({"messages": []})).cursor is None
    logs = m.parse_log_page(
        ok({"events": [{"time": 3, "messageId": "m1", "state": "RETRY", "nextDeliveryTime": 9}]})
    )
    assert logs.events[0].next_delivery_time == 9 and logs.cursor is None
    info = m.parse_flow_control_info(
        ok({"flowControlKey": "k", "waitListSize": 4, "parallelismMax": 2, "parallelismCount": 2})
    )
    assert (info.wait_list_size, info.parallelism_count, info.rate_max) == (4, 2, 0)
    assert m.parse_retry(ok({"messageId": "m2"})) == "m2"


@pytest.mark.parametrize(
    ("response", "status"),
    [
        (HttpResponse(404, {}, b'{"error":"schedule not found"}'), 404),
        (HttpResponse(200, {}, b"not json"), 200),
        (HttpResponse(200, {}, b"[]"), 200),
        (HttpResponse(200, {}, b'{"cron": "*"}'), 200),
    ],
)
def test_parsers_turn_errors_and_bad_shapes_into_qstash_errors(
    response: HttpResponse, status: int
) -> None:
    """An error status or a malformed answer is a QStashError, never a KeyError."""
    with pytest.raises(QStashError) as info:
        m.parse_schedule(response)
    assert info.value.status == status
    with pytest.raises(QStashError):
        m.expect_ok(HttpResponse(500, {}, b"oops"))
    m.expect_ok(HttpResponse(202, {}, b""))


class Scripted:
    """A transport answering from a list: an HttpResponse, an exception to raise, or "hang"."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.sent: list[HttpRequest] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request)
        answer = self.answers.pop(0)
        if answer == "hang":
            await asyncio.Event().wait()
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, HttpResponse)
        return answer


async def test_admin_call_has_a_total_deadline() -> None:
    """A server that never answers costs one deadline, then TransportTimeout."""
    hanging = Scripted("hang")
    admin = QStashAdmin(T, url=B, transport=hanging, deadline=0.2)
    started = time.monotonic()
    with pytest.raises(TransportTimeout):
        await admin.list_schedules()
    assert time.monotonic() - started < 1.5 and len(hanging.sent) == 1


async def test_reads_are_retried_and_a_dlq_retry_is_not() -> None:
    """A GET survives transport failures; POST /v2/dlq/retry (not idempotent) is sent once."""
    flaky = Scripted(TransportError("reset"), TransportError("reset"), ok([]))
    assert await QStashAdmin(T, url=B, transport=flaky).list_schedules() == []
    assert len(flaky.sent) == 3
    once = Scripted(TransportError("reset"), ok({"messageId": "m"}))
    with pytest.raises(TransportError):
        await QStashAdmin(T, url=B, transport=once).retry_dlq("dlq_1")
    assert len(once.sent) == 1


async def test_admin_errors_and_repr_never_show_the_token() -> None:
    """A 401 is a QStashError without the token; repr shows the URL only."""
    admin = QStashAdmin(T, url=B, transport=Scripted(HttpResponse(401, {}, b"bad token")))
    with pytest.raises(QStashError) as info:
        await admin.get_message("msg_1")
    assert info.value.status == 401 and T not in str(info.value) and T not in repr(admin)
    with pytest.raises(ConfigError):
        QStashAdmin.from_env({})
