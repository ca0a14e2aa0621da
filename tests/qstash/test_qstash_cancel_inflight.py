"""Cancelling a message whose attempt is already in flight: the attempt may still reach the
destination (QStash: "it might be too late to cancel"), but its outcome never brings the
message back: no retry, no dead letter, nothing pending afterwards."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from qstash_sink import Sink, logged_states

from shared.errors import QStashError
from shared.qstash import QStash, QStashAdmin

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("retries", [2, 0])
async def test_a_failing_attempt_after_cancel_does_not_revive_the_message(
    qstash: QStash, admin: QStashAdmin, sink: Sink, retries: int
) -> None:
    """A message cancelled while its attempt is in flight is neither retried (retries left)
    nor dead-lettered (none left) when that attempt fails: it stays gone."""
    path = f"/cancel-inflight-{uuid.uuid4().hex[:8]}"
    sink.holds[path] = asyncio.Event()
    sink.scripts[path] = lambda n: (500, {})
    message_id = (await qstash.publish_json(sink.url(path), {"n": 1}, retries=retries)).message_id
    await sink.wait_for(path, 1)  # the attempt is in flight, held by the destination
    await admin.cancel_message(message_id)
    sink.holds[path].set()  # the destination now answers 500
    states = await logged_states(admin, message_id, until="ERROR")
    assert states[-1] == "ERROR" and "CANCELED" in states, states
    assert "RETRY" not in states and "FAILED" not in states, states
    with pytest.raises(QStashError) as info:
        await admin.get_message(message_id)
    assert info.value.status == 404
    dead = await admin.list_dlq(filters={"message_id": message_id})
    assert dead.messages == []
    assert len(sink.at(path)) == 1
