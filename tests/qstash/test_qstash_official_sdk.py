"""The official `qstash` SDK, unchanged, against our local server; its Receiver on our tokens."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import qstash as official
from qstash_sink import Sink

from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def sdk(env: dict[str, str]) -> official.QStash:
    return official.QStash(env["QSTASH_TOKEN"], base_url=env["QSTASH_URL"], retry=False)


async def test_official_client_publishes_dedups_and_lists_the_dlq(
    qstash_env: dict[str, str], sink: Sink
) -> None:
    """publish_json, a deduplicated resend and dlq.list work through the official client."""
    client = sdk(qstash_env)
    first = await asyncio.to_thread(
        client.message.publish_json, url=sink.url("/sdk"), body={"a": 1}, deduplication_id="sdk-1"
    )
    again = await asyncio.to_thread(
        client.message.publish_json, url=sink.url("/sdk"), body={"a": 1}, deduplication_id="sdk-1"
    )
    assert again.message_id == first.message_id
    await sink.wait_for("/sdk", 1)

    sink.scripts["/sdk-fail"] = lambda n: (500, {})
    dead = await asyncio.to_thread(
        client.message.publish_json, url=sink.url("/sdk-fail"), body={"b": 2}, retries=0
    )
    await sink.wait_for("/sdk-fail", 1)

    async def in_dlq() -> list[Any]:
        listed = await asyncio.to_thread(client.dlq.list, filter={"message_id": dead.message_id})
        return [m for m in listed.messages if m.message_id == dead.message_id]

    found = await eventually(in_dlq, "the message to reach the DLQ", timeout=5)
    assert found[0].response_status == 500 and found[0].url == sink.url("/sdk-fail")
    await asyncio.to_thread(client.dlq.delete, found[0].dlq_id)
    keys = await asyncio.to_thread(client.signing_key.get)
    assert keys.current == qstash_env["QSTASH_CURRENT_SIGNING_KEY"]


async def test_official_receiver_verifies_our_server_signatures(
    qstash_env: dict[str, str], sink: Sink
) -> None:
    """The SDK's PyJWT-based Receiver accepts what the local server signs."""
    client = sdk(qstash_env)
    await asyncio.to_thread(
        client.message.publish, url=sink.url("/sdk-verify"), body="plain text body"
    )
    [delivery] = await sink.wait_for("/sdk-verify", 1)
    receiver = official.Receiver(
        qstash_env["QSTASH_CURRENT_SIGNING_KEY"], qstash_env["QSTASH_NEXT_SIGNING_KEY"]
    )
    receiver.verify(
        signature=delivery.headers["Upstash-Signature"],
        body=delivery.body.decode(),
        url=sink.url("/sdk-verify"),
    )
