"""The official `qstash` SDK, unchanged, drives the local QStash's management API: schedules,
URL groups, message get/cancel, the DLQ (list, get, retry, delete), logs, flow-control info."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import qstash as official
from qstash_sink import Sink

from shared.qstash import Receiver
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
T = TypeVar("T")


def sdk(env: dict[str, str]) -> official.QStash:
    return official.QStash(env["QSTASH_TOKEN"], base_url=env["QSTASH_URL"], retry=False)


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


def call_later(fn: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """`fn` (a blocking SDK call) as a probe `eventually` can await, run in a thread."""
    return lambda: asyncio.to_thread(fn)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_schedule_create_get_list_pause_resume_delete(
    qstash_env: dict[str, str], sink: Sink
) -> None:
    """A schedule made by the SDK fires signed deliveries our Receiver verifies, and obeys
    get, list, pause, resume and delete."""
    client = sdk(qstash_env)
    path = "/" + unique("cron")
    schedule_id = await call(
        client.schedule.create_json,
        destination=sink.url(path),
        cron="* * * * *",
        body={"tick": True},
        retries=0,
        flow_control={"key": unique("sched-fc"), "parallelism": 1},
    )
    # at time scale 0.001 a one-minute cron fires every 60 ms
    deliveries = await sink.wait_for(path, 2)
    receiver = Receiver.from_env(qstash_env)
    for delivery in deliveries:
        claims = receiver.verify(
            delivery.headers["Upstash-Signature"], delivery.body, url=sink.url(path)
        )
        assert claims.subject == sink.url(path)
        assert delivery.headers["Upstash-Schedule-Id"] == schedule_id
        assert delivery.body == b'{"tick": true}'
    got = await call(client.schedule.get, schedule_id)
    assert got.cron == "* * * * *" and got.destination == sink.url(path)
    assert got.retries == 0 and not got.paused and got.flow_control is not None
    assert got.flow_control.parallelism == 1
    listed = await call(client.schedule.list)
    assert schedule_id in [s.schedule_id for s in listed]

    await call(client.schedule.pause, schedule_id)
    assert (await call(client.schedule.get, schedule_id)).paused
    await call(client.schedule.resume, schedule_id)
    assert not (await call(client.schedule.get, schedule_id)).paused
    before = len(sink.at(path))
    await sink.wait_for(path, before + 1)  # resumed: fires again

    await call(client.schedule.delete, schedule_id)
    assert schedule_id not in [s.schedule_id for s in await call(client.schedule.list)]
    with pytest.raises(official.errors.QStashError):
        await call(client.schedule.get, schedule_id)


async def test_url_group_publish_fans_out_one_message_per_endpoint(
    qstash_env: dict[str, str], sink: Sink
) -> None:
    """Publishing to a URL group gives one message per endpoint, each delivered once."""
    client = sdk(qstash_env)
    group = unique("group")
    await call(
        client.url_group.upsert_endpoints,
        group,
        [{"url": sink.url("/g-a"), "name": "a"}, {"url": sink.url("/g-b")}],
    )
    got = await call(client.url_group.get, group)
    assert sorted(e.url for e in got.endpoints) == [sink.url("/g-a"), sink.url("/g-b")]
    assert group in [g.name for g in await call(client.url_group.list)]

    results = await call(client.message.publish_json, url_group=group, body={"fan": "out"})
    assert isinstance(results, list) and len(results) == 2
    assert {r.url for r in results} == {sink.url("/g-a"), sink.url("/g-b")}
    assert len({r.message_id for r in results}) == 2
    await sink.wait_for("/g-a", 1)
    await sink.wait_for("/g-b", 1)

    await call(client.url_group.remove_endpoints, group, [{"name": "a"}])
    assert [e.url for e in (await call(client.url_group.get, group)).endpoints] == [
        sink.url("/g-b")
    ]
    await call(client.url_group.delete, group)
    assert group not in [g.name for g in await call(client.url_group.list)]
    with pytest.raises(official.errors.QStashError):
        await call(client.message.publish_json, url_group=group, body={})
    assert len(sink.at("/g-a")) == 1 and len(sink.at("/g-b")) == 1


async def test_message_get_cancel_and_its_log(qstash_env: dict[str, str], sink: Sink) -> None:
    """A delayed message can be read and cancelled; its log records CREATED then CANCELED."""
    client = sdk(qstash_env)
    key = unique("fc")
    published = await call(
        client.message.publish_json,
        url=sink.url("/delayed"),
        body={"later": 1},
        delay="1d",  # 86 s at time scale 0.001
        flow_control={"key": key, "rate": 5, "period": "10s", "parallelism": 3},
        label="delayed",
    )
    message = await call(client.message.get, published.message_id)
    assert message.url == sink.url("/delayed") and message.body == '{"later": 1}'
    assert message.flow_control is not None and message.flow_control.key == key
    assert (message.flow_control.rate, message.flow_control.period) == (5, 10)
    assert message.flow_control.parallelism == 3 and message.label == "delayed"

    info = await call(client.flow_control.get, key)
    # Not due yet: the message waits for its own delay, not for a slot of the key.
    assert info.key == key and info.wait_list_size == 0 and info.parallelism_max == 3
    assert (info.rate_max, info.rate_period, info.parallelism_count) == (5, 10, 0)

    await call(client.message.cancel, published.message_id)
    with pytest.raises(official.errors.QStashError):
        await call(client.message.get, published.message_id)
    logs = await call(client.log.list, filter={"message_id": published.message_id})
    states = [entry.state.value for entry in reversed(logs.logs)]
    assert states == ["CREATED", "CANCEL_REQUESTED", "CANCELED"]
    assert sink.at("/delayed") == []


async def test_dlq_list_get_retry_delete(qstash_env: dict[str, str], sink: Sink) -> None:
    """Dead messages are listed with a cursor; a DLQ retry re-delivers; delete removes."""
    client = sdk(qstash_env)
    path = "/" + unique("dead")
    failing = True
    sink.scripts[path] = lambda n: (500, {}) if failing else (200, {})
    ids = [
        (
            await call(client.message.publish_json, url=sink.url(path), body={"n": n}, retries=0)
        ).message_id
        for n in range(3)
    ]

    def dead_entries() -> list[Any]:
        seen: list[Any] = []
        cursor = None
        while True:
            page = client.dlq.list(cursor=cursor, count=1, filter={"url": sink.url(path)})
            seen.extend(page.messages)
            cursor = page.cursor
            if cursor is None:
                return seen if len(seen) == 3 else []

    entries = await eventually(call_later(dead_entries), "three dead messages", timeout=10)
    assert sorted(e.message_id for e in entries) == sorted(ids)
    first = await call(client.dlq.get, entries[0].dlq_id)
    assert first.response_status == 500 and first.url == sink.url(path)

    failing = False
    retried = await call(client.http.request, path=f"/v2/dlq/retry/{first.dlq_id}", method="POST")
    new_id = retried["messageId"]
    assert new_id not in ids
    deliveries = await sink.wait_for(path, 4)
    assert deliveries[-1].headers["Upstash-Message-Id"] == new_id
    logs = await eventually(
        call_later(
            lambda: [
                e.state.value
                for e in client.log.list(filter={"message_id": new_id}).logs
                if e.state.value == "DELIVERED"
            ]
        ),
        "the retried message's DELIVERED log",
        timeout=10,
    )
    assert logs == ["DELIVERED"]
    dead_log = [
        e.state.value for e in (await call(client.log.list, filter={"message_id": ids[0]})).logs
    ]
    assert "FAILED" in dead_log and "CREATED" in dead_log

    for entry in entries[1:]:
        await call(client.dlq.delete, entry.dlq_id)
    left = await call(client.dlq.list, filter={"url": sink.url(path)})
    assert left.messages == []
