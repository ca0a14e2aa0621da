"""End to end on the real devstack: our client publishes, the local QStash delivers to a sink
that verifies every signature with our Receiver; retries, DLQ, dedup, callbacks, cancel."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import httpx
import pytest
from qstash_sink import TIME_SCALE, Sink, message_finished_async

from shared.errors import QStashError
from shared.qstash import QStash, Receiver
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def qstash(qstash_env: dict[str, str]) -> Any:
    """Our client pointed at the fast devstack."""
    client = QStash.from_env(qstash_env)
    yield client
    await client.aclose()


def verify(env: dict[str, str], sink: Sink, path: str) -> None:
    """Every delivery to `path` carries a valid signature for that URL and its raw body."""
    receiver = Receiver.from_env(env)
    for d in sink.at(path):
        claims = receiver.verify(d.headers["Upstash-Signature"], d.body, url=sink.url(path))
        assert claims.issuer == "Upstash" and claims.jwt_id


async def dlq_entries(env: dict[str, str], message_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{env['QSTASH_URL']}/v2/dlq",
            params={"messageId": message_id},
            headers={"Authorization": f"Bearer {env['QSTASH_TOKEN']}"},
        )
    assert response.status_code == 200
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def test_publish_json_is_delivered_signed_with_body_and_headers(
    qstash: QStash, sink: Sink, qstash_env: dict[str, str]
) -> None:
    """A published JSON job arrives once, signed, with body, content type and forwarded headers."""
    body = {"orderId": 42, "email": "a@example.com"}
    result = await qstash.publish_json(
        sink.url("/api/jobs/send-confirmation"), body, retries=3, headers={"X-Trace": "t-1"}
    )
    [d] = await sink.wait_for("/api/jobs/send-confirmation", 1)
    assert json.loads(d.body) == body
    assert d.headers["Content-Type"] == "application/json"
    assert d.headers["X-Trace"] == "t-1"
    assert d.headers["Upstash-Message-Id"] == result.message_id
    assert d.headers["Upstash-Retried"] == "0"
    assert d.headers["User-Agent"] == "Upstash-QStash"
    verify(qstash_env, sink, "/api/jobs/send-confirmation")


async def test_retries_follow_the_backoff_then_the_dlq(
    qstash: QStash, sink: Sink, qstash_env: dict[str, str]
) -> None:
    """A failing destination gets exactly 1 + retries attempts with growing gaps, then the DLQ."""
    sink.scripts["/fail"] = lambda n: (500, {})
    result = await qstash.publish(
        sink.url("/fail"),
        b"raw-bytes",
        content_type="text/plain",
        retries=3,
        failure_callback=sink.url("/failed"),
    )
    attempts = await sink.wait_for("/fail", 4, timeout=15)
    assert [d.headers["Upstash-Retried"] for d in attempts] == ["0", "1", "2", "3"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    assert gaps[0] < gaps[1] < gaps[2]
    assert gaps[2] >= 0.9 * 1808 * TIME_SCALE  # retry 3 waits e^7.5 s, scaled
    verify(qstash_env, sink, "/fail")
    [callback] = await sink.wait_for("/failed", 1)
    verify(qstash_env, sink, "/failed")
    report = json.loads(callback.body)
    assert report["sourceMessageId"] == result.message_id and report["status"] == 500
    await message_finished_async(qstash_env, result.message_id)
    assert len(sink.at("/fail")) == 4
    [entry] = await dlq_entries(qstash_env, result.message_id)
    assert entry["responseStatus"] == 500 and entry["body"] == "raw-bytes"
    assert entry["maxRetries"] == 3 and entry["responseBody"] == "sink says 500"


async def test_non_retryable_489_goes_straight_to_the_dlq(
    qstash: QStash, sink: Sink, qstash_env: dict[str, str]
) -> None:
    """489 with Upstash-NonRetryable-Error stops retrying after one attempt."""
    sink.scripts["/never"] = lambda n: (489, {"Upstash-NonRetryable-Error": "true"})
    result = await qstash.publish_json(sink.url("/never"), {"x": 1}, retries=5)
    await sink.wait_for("/never", 1)
    await eventually(lambda: dlq_entries(qstash_env, result.message_id), "a DLQ entry", timeout=5)
    await message_finished_async(qstash_env, result.message_id)
    assert len(sink.at("/never")) == 1


async def test_retry_after_header_sets_the_next_wait(qstash: QStash, sink: Sink) -> None:
    """A failed response's Retry-After (seconds, scaled) decides when the next attempt comes."""
    sink.scripts["/later"] = lambda n: (503, {"Retry-After": "800"}) if n == 1 else (200, {})
    await qstash.publish_json(sink.url("/later"), {}, retries=2)
    first, second = await sink.wait_for("/later", 2, timeout=10)
    assert second.at - first.at >= 0.7


async def test_dlq_retry_and_delete(qstash: QStash, sink: Sink, qstash_env: dict[str, str]) -> None:
    """A DLQ entry can be retried (delivered again, then gone) and deleted."""
    sink.scripts["/flaky"] = lambda n: (500, {}) if n == 1 else (200, {})
    result = await qstash.publish_json(sink.url("/flaky"), {"k": 1}, retries=0)
    await sink.wait_for("/flaky", 1)
    entries = await eventually(
        lambda: dlq_entries(qstash_env, result.message_id), "a DLQ entry", timeout=5
    )
    auth = {"Authorization": f"Bearer {qstash_env['QSTASH_TOKEN']}"}
    base = qstash_env["QSTASH_URL"]
    async with httpx.AsyncClient(headers=auth) as client:
        retried = await client.post(f"{base}/v2/dlq/retry/{entries[0]['dlqId']}")
        assert retried.status_code == 200 and retried.json()["messageId"]
        await sink.wait_for("/flaky", 2)
        assert await dlq_entries(qstash_env, result.message_id) == []
        missing = await client.delete(f"{base}/v2/dlq/{entries[0]['dlqId']}")
        assert missing.status_code == 404


async def test_deduplication_answers_202_and_delivers_once(
    qstash: QStash, sink: Sink, qstash_env: dict[str, str]
) -> None:
    """The same deduplication id (or the same content) is accepted once and delivered once."""
    first = await qstash.publish_json(sink.url("/dedup"), {"a": 1}, deduplication_id="order-1")
    again = await qstash.publish_json(sink.url("/dedup"), {"a": 1}, deduplication_id="order-1")
    assert not first.deduplicated and again.deduplicated
    assert again.message_id == first.message_id
    c1 = await qstash.publish_json(sink.url("/dedup"), {"b": 2}, content_based_deduplication=True)
    c2 = await qstash.publish_json(sink.url("/dedup"), {"b": 2}, content_based_deduplication=True)
    assert c2.deduplicated and c2.message_id == c1.message_id
    await sink.wait_for("/dedup", 2)
    for message_id in (first.message_id, c1.message_id):
        await message_finished_async(qstash_env, message_id)
    assert len(sink.at("/dedup")) == 2


async def test_success_callback_is_delivered_signed(
    qstash: QStash, sink: Sink, qstash_env: dict[str, str]
) -> None:
    """After a successful delivery the callback URL receives the response, signed."""
    result = await qstash.publish_json(sink.url("/job"), {}, callback=sink.url("/done"))
    [callback] = await sink.wait_for("/done", 1)
    verify(qstash_env, sink, "/done")
    report = json.loads(callback.body)
    assert report["sourceMessageId"] == result.message_id and report["status"] == 200


async def test_delay_and_cancel(qstash: QStash, sink: Sink, qstash_env: dict[str, str]) -> None:
    """A delayed message waits (scaled); a cancelled one is never delivered and is gone."""
    started = time.monotonic()
    await qstash.publish_json(sink.url("/delayed"), {}, delay="800s")
    cancelled = await qstash.publish_json(sink.url("/cancelled"), {}, delay="600s")
    auth = {"Authorization": f"Bearer {qstash_env['QSTASH_TOKEN']}"}
    url = f"{qstash_env['QSTASH_URL']}/v2/messages/{cancelled.message_id}"
    async with httpx.AsyncClient(headers=auth) as client:
        pending = await client.get(url)
        assert pending.status_code == 200 and pending.json()["url"] == sink.url("/cancelled")
        assert (await client.delete(url)).status_code in (200, 202)
        assert (await client.get(url)).status_code == 404
    [d] = await sink.wait_for("/delayed", 1)
    assert d.at - started >= 0.7
    assert sink.at("/cancelled") == []


async def test_batch_publishes_each_message(qstash: QStash, sink: Sink) -> None:
    """batch_json returns one id per message and each is delivered."""
    results = await qstash.batch_json(
        [{"url": sink.url("/b1"), "body": {"n": 1}}, {"url": sink.url("/b2"), "body": {"n": 2}}]
    )
    assert len({r.message_id for r in results}) == 2
    [d1] = await sink.wait_for("/b1", 1)
    [d2] = await sink.wait_for("/b2", 1)
    assert json.loads(d1.body) == {"n": 1} and json.loads(d2.body) == {"n": 2}


async def test_auth_and_malformed_requests_are_refused(qstash_env: dict[str, str]) -> None:
    """Bad tokens get 401 JSON; malformed destinations and headers get clear 400s."""
    base = qstash_env["QSTASH_URL"]
    async with httpx.AsyncClient() as client:
        denied = await client.post(f"{base}/v2/publish/http://127.0.0.1:9/x")
        assert denied.status_code == 401 and "error" in denied.json()
        wrong = await client.get(f"{base}/v2/keys", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    bad = QStash(qstash_env["QSTASH_TOKEN"], url=base)
    try:
        with pytest.raises(QStashError) as info:
            await bad.publish("http://10.0.0.1/x", b"")  # not loopback: refused locally
        assert info.value.status == 400 and "loopback" in info.value.message
    finally:
        await bad.aclose()
    auth = {"Authorization": f"Bearer {qstash_env['QSTASH_TOKEN']}"}
    async with httpx.AsyncClient(headers=auth) as client:
        for path, headers in [
            ("/v2/publish/not:a-url", {}),
            ("/v2/publish/http://127.0.0.1:9/x", {"Upstash-Delay": "5 parsecs"}),
            ("/v2/publish/http://127.0.0.1:9/x", {"Upstash-Retries": "many"}),
            ("/v2/publish/http://127.0.0.1:9/x", {"Upstash-Method": "BREW"}),
            ("/v2/publish/http://127.0.0.1:9/x", {"Upstash-Retry-Delay": "__import__('os')"}),
        ]:
            response = await client.post(f"{base}{path}", headers=headers)
            assert response.status_code == 400, (path, headers)
            assert response.json()["error"]
        keys = await client.get(f"{base}/v2/keys")
        assert keys.json() == {
            "current": qstash_env["QSTASH_CURRENT_SIGNING_KEY"],
            "next": qstash_env["QSTASH_NEXT_SIGNING_KEY"],
        }
