"""Cancelling a message whose attempt is already in flight: the attempt may still reach the
destination (QStash: "it might be too late to cancel"), but its outcome never brings the
message back: no retry, no dead letter, nothing pending afterwards."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from qstash_sink import Sink

from shared.errors import QStashError
from shared.qstash import QStash, QStashAdmin

pytestmark = pytest.mark.integration


@pytest.fixture
async def admin(qstash_env: dict[str, str]) -> AsyncIterator[QStashAdmin]:
    client = QStashAdmin.from_env(qstash_env)
    try:
        yield client
    finally:
        await client.aclose()


async def states_of(admin: QStashAdmin, message_id: str) -> list[str]:
    """The message's log states, oldest first."""
    return [e.state for e in reversed((await admin.logs(message_id)).events)]


async def wait_for_state(
    admin: QStashAdmin, message_id: str, state: str, timeout: float = 10.0
) -> list[str]:
    """Polls the log (bounded) until it records `state` for the message."""
    deadline = time.monotonic() + timeout
    while state not in (states := await states_of(admin, message_id)):
        assert time.monotonic() < deadline, f"{message_id}: no {state} in {states}"
        await asyncio.sleep(0.02)
    return states


@pytest.mark.parametrize("retries", [2, 0])
async def test_a_failing_attempt_after_cancel_does_not_revive_the_message(
    qstash_env: dict[str, str], admin: QStashAdmin, sink: Sink, retries: int
) -> None:
    """A message cancelled while its attempt is in flight is neither retried (retries left)
    nor dead-lettered (none left) when that attempt fails: it stays gone."""
    path = f"/cancel-inflight-{uuid.uuid4().hex[:8]}"
    sink.holds[path] = asyncio.Event()
    sink.scripts[path] = lambda n: (500, {})
    qstash = QStash.from_env(qstash_env)
    try:
        message_id = (
            await qstash.publish_json(sink.url(path), {"n": 1}, retries=retries)
        ).message_id
    finally:
        await qstash.aclose()
    await sink.wait_for(path, 1)  # the attempt is in flight, held by the destination
    await admin.cancel_message(message_id)
    sink.holds[path].set()  # the destination now answers 500
    states = await wait_for_state(admin, message_id, "ERROR")
    assert states[-1] == "ERROR" and "CANCELED" in states, states
    assert "RETRY" not in states and "FAILED" not in states, states
    with pytest.raises(QStashError) as info:
        await admin.get_message(message_id)
    assert info.value.status == 404
    dead = await admin.list_dlq(filters={"message_id": message_id})
    assert dead.messages == []
    assert len(sink.at(path)) == 1
