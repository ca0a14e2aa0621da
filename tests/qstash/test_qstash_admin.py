"""Our `QStashAdmin` against the local QStash: schedules, URL groups, message get/cancel,
the DLQ, logs and flow-control info; plus the local server's answers to malformed calls
and the state it keeps across a restart."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from qstash_sink import Sink, stack_on

from shared.errors import QStashError
from shared.qstash import FlowControl, QStash, QStashAdmin, Receiver
from shared.qstash.manage import Endpoint
from tests.conftest import qstash_env_of
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_schedule_lifecycle_and_verified_delivery(
    admin: QStashAdmin, qstash_env: dict[str, str], sink: Sink
) -> None:
    """create_schedule fires signed deliveries our Receiver verifies; get/list/pause/resume/
    delete behave, and an upsert with the same id replaces the cron."""
    path = "/" + unique("ours-cron")
    schedule_id = unique("flush")
    got_id = await admin.create_schedule(
        sink.url(path),
        "*/2 * * * *",
        {"flush": True},
        schedule_id=schedule_id,
        retries=1,
        flow_control=FlowControl("flush", parallelism=1),
    )
    assert got_id == schedule_id
    [delivery] = (await sink.wait_for(path, 1))[:1]
    Receiver.from_env(qstash_env).verify(
        delivery.headers["Upstash-Signature"], delivery.body, url=sink.url(path)
    )
    assert delivery.headers["Content-Type"] == "application/json"
    schedule = await admin.get_schedule(schedule_id)
    assert (schedule.cron, schedule.retries, schedule.paused) == ("*/2 * * * *", 1, False)
    assert schedule.flow_control is not None and schedule.flow_control.parallelism == 1
    assert schedule.next_schedule_time is not None
    assert schedule_id in [s.schedule_id for s in await admin.list_schedules()]

    await admin.create_schedule(sink.url(path), "0 3 * * *", schedule_id=schedule_id)
    assert (await admin.get_schedule(schedule_id)).cron == "0 3 * * *"
    await admin.pause_schedule(schedule_id)
    assert (await admin.get_schedule(schedule_id)).paused
    await admin.resume_schedule(schedule_id)
    await admin.delete_schedule(schedule_id)
    with pytest.raises(QStashError) as info:
        await admin.get_schedule(schedule_id)
    assert info.value.status == 404


async def test_url_group_publish_message_cancel_logs_and_dlq(
    admin: QStashAdmin, qstash: QStash, sink: Sink
) -> None:
    """Fan-out through a URL group, a cancelled delayed message, the logs of each, and a
    DLQ entry retried into a delivery, then the rest deleted."""
    group = unique("ours-group")
    await admin.upsert_endpoints(group, [Endpoint(sink.url("/og-1"), "one"), sink.url("/og-2")])
    assert [g.name for g in await admin.list_url_groups() if g.name == group] == [group]
    results = await admin.publish_to_group(group, {"to": "all"}, retries=0)
    assert sorted(r.url for r in results) == [sink.url("/og-1"), sink.url("/og-2")]
    await sink.wait_for("/og-1", 1)
    await sink.wait_for("/og-2", 1)
    await admin.remove_endpoints(group, [Endpoint("", "one")])
    assert [e.url for e in (await admin.get_url_group(group)).endpoints] == [sink.url("/og-2")]
    await admin.delete_url_group(group)
    with pytest.raises(QStashError) as info:
        await admin.publish_to_group(group, {})
    assert info.value.status == 404

    delayed = await qstash.publish_json(sink.url("/later"), {"x": 1}, delay="1d")
    message = await admin.get_message(delayed.message_id)
    assert message.url == sink.url("/later") and message.body == '{"x":1}'
    await admin.cancel_message(delayed.message_id)
    page = await admin.logs(delayed.message_id)
    assert [e.state for e in page.events] == ["CANCELED", "CANCEL_REQUESTED", "CREATED"]

    path = "/" + unique("ours-dead")
    failing = True
    sink.scripts[path] = lambda n: (503, {}) if failing else (200, {})
    dead = await qstash.publish_json(sink.url(path), {"dead": 1}, retries=1)

    async def in_dlq() -> list[Any]:
        return (await admin.list_dlq(filters={"message_id": dead.message_id})).messages

    [entry] = await eventually(in_dlq, "the dead message", timeout=10)
    assert entry.response_status == 503 and entry.message.body == '{"dead":1}'
    assert (await admin.get_dlq(entry.dlq_id)).message.message_id == dead.message_id
    states = [e.state for e in (await admin.logs(dead.message_id)).events]
    assert states[0] == "FAILED" and "RETRY" in states and states[-1] == "CREATED"
    failing = False
    new_id = await admin.retry_dlq(entry.dlq_id, retries=0)
    assert new_id != dead.message_id
    deliveries = await sink.wait_for(path, 3)
    assert deliveries[-1].headers["Upstash-Message-Id"] == new_id
    assert (await admin.list_dlq(filters={"message_id": dead.message_id})).messages == []
    with pytest.raises(QStashError):
        await admin.delete_dlq(entry.dlq_id)  # already gone: retried


async def test_dlq_pages_with_a_cursor(admin: QStashAdmin, qstash: QStash, sink: Sink) -> None:
    """list_dlq walks every dead message of a URL page by page, filtered before paging."""
    path = "/" + unique("ours-pages")
    sink.scripts[path] = lambda n: (500, {})
    sink.scripts[path + "-other"] = lambda n: (500, {})
    other = await qstash.publish_json(sink.url(path + "-other"), {}, retries=0)

    async def other_dead() -> list[Any]:
        return (await admin.list_dlq(filters={"message_id": other.message_id})).messages

    await eventually(other_dead, "a dead letter of another URL, listed before ours", timeout=10)
    ids = {
        (await qstash.publish_json(sink.url(path), {"n": n}, retries=0)).message_id
        for n in range(3)
    }

    async def all_dead() -> list[list[str]]:
        pages: list[list[str]] = []
        cursor = None
        while True:
            page = await admin.list_dlq(cursor=cursor, count=1, filters={"url": sink.url(path)})
            pages.append([m.message.message_id for m in page.messages])
            cursor = page.cursor
            if cursor is None:
                return pages if sum(map(len, pages)) == 3 else []

    pages = await eventually(all_dead, "3 dead messages", timeout=10)
    # the filter applies before the page: three pages of one, whatever else is in the DLQ
    assert [len(p) for p in pages] == [1, 1, 1]
    assert {i for p in pages for i in p} == ids
    for entry in (await admin.list_dlq(filters={"url": sink.url(path)})).messages:
        await admin.delete_dlq(entry.dlq_id)


async def test_malformed_management_calls_answer_json_4xx(qstash_env: dict[str, str]) -> None:
    """Bad cron, bad flow-control values, unknown groups/schedules/keys: JSON 400/404."""
    base = qstash_env["QSTASH_URL"]
    auth = {"Authorization": f"Bearer {qstash_env['QSTASH_TOKEN']}"}
    dest = "http://127.0.0.1:9/x"
    cases: list[tuple[str, str, dict[str, str], bytes, int]] = [
        ("POST", f"/v2/schedules/{dest}", {"Upstash-Cron": "every minute"}, b"", 400),
        ("POST", f"/v2/schedules/{dest}", {}, b"", 400),
        ("POST", f"/v2/schedules/{dest}", {"Upstash-Cron": "* * * * * *"}, b"", 400),
        ("POST", "/v2/schedules/no-such-group", {"Upstash-Cron": "* * * * *"}, b"", 404),
        (
            "POST",
            f"/v2/publish/{dest}",
            {"Upstash-Flow-Control-Key": "k", "Upstash-Flow-Control-Value": "rate=0"},
            b"",
            400,
        ),
        (
            "POST",
            f"/v2/publish/{dest}",
            {"Upstash-Flow-Control-Key": "k", "Upstash-Flow-Control-Value": "speed=9"},
            b"",
            400,
        ),
        ("POST", f"/v2/publish/{dest}", {"Upstash-Flow-Control-Key": "k"}, b"", 400),
        ("POST", "/v2/publish/no-such-group", {}, b"", 404),
        ("POST", "/v2/topics/g/endpoints", {}, b"[[[", 400),
        ("POST", "/v2/topics/g/endpoints", {}, b'{"endpoints": []}', 400),
        ("POST", "/v2/topics/g/endpoints", {}, b'{"endpoints": [{"url": "ftp://x"}]}', 400),
        ("GET", "/v2/topics/no-such-group", {}, b"", 404),
        ("GET", "/v2/schedules/no-such-schedule", {}, b"", 404),
        ("PATCH", "/v2/schedules/no-such-schedule/pause", {}, b"", 404),
        ("GET", "/v2/flowControl/never-used-key", {}, b"", 404),
        ("GET", "/v2/events?cursor=abc", {}, b"", 400),
    ]
    async with httpx.AsyncClient(headers=auth) as client:
        for method, path, headers, body, status in cases:
            response = await client.request(method, f"{base}{path}", headers=headers, content=body)
            assert response.status_code == status, (method, path, headers, response.text)
            assert response.json()["error"], (method, path)
        denied = await client.get(f"{base}/v2/schedules", headers={"Authorization": "Bearer x"})
        assert denied.status_code == 401


async def test_schedules_and_url_groups_survive_a_restart(tmp_path: Path, sink: Sink) -> None:
    """With --data-dir, a schedule and a URL group made before a restart still work after."""

    async with stack_on(tmp_path) as first:
        admin = QStashAdmin.from_env(qstash_env_of(first))
        await admin.upsert_endpoints("kept-group", [sink.url("/kept-g")])
        await admin.create_schedule(sink.url("/kept-s"), "0 0 1 1 *", schedule_id="kept")
        await admin.aclose()
    async with stack_on(tmp_path) as second:
        admin = QStashAdmin.from_env(qstash_env_of(second))
        assert (await admin.get_schedule("kept")).cron == "0 0 1 1 *"
        await admin.publish_to_group("kept-group", {"after": "restart"})
        await sink.wait_for("/kept-g", 1)
        await admin.aclose()
