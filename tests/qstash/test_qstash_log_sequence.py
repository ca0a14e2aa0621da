"""The local QStash's log records every state change of a message, in order: a delivery, a
retry sequence ending in the DLQ, and a retry ending in a delivery."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from qstash_sink import Sink

from shared.qstash import QStash, QStashAdmin

pytestmark = pytest.mark.integration


@pytest.fixture
async def clients(qstash_env: dict[str, str]) -> AsyncIterator[tuple[QStash, QStashAdmin]]:
    qstash, admin = QStash.from_env(qstash_env), QStashAdmin.from_env(qstash_env)
    try:
        yield qstash, admin
    finally:
        await qstash.aclose()
        await admin.aclose()


async def final_states(admin: QStashAdmin, message_id: str, last: str) -> list[str]:
    """The message's states oldest first, once (bounded wait) `last` is recorded."""
    deadline = time.monotonic() + 10
    while True:
        states = [e.state for e in reversed((await admin.logs(message_id)).events)]
        if last in states:
            return states
        assert time.monotonic() < deadline, f"no {last} for {message_id}: {states}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("answers", "retries", "expected"),
    [
        ([200], 2, ["CREATED", "ACTIVE", "DELIVERED"]),
        (
            [500, 500],
            1,
            ["CREATED", "ACTIVE", "ERROR", "RETRY", "ACTIVE", "ERROR", "FAILED"],
        ),
        (
            [503, 200],
            3,
            ["CREATED", "ACTIVE", "ERROR", "RETRY", "ACTIVE", "DELIVERED"],
        ),
    ],
)
async def test_each_state_change_is_logged_in_order(
    clients: tuple[QStash, QStashAdmin],
    sink: Sink,
    answers: list[int],
    retries: int,
    expected: list[str],
) -> None:
    """CREATED, then per attempt ACTIVE and its outcome (ERROR + RETRY, or the last one's
    DELIVERED / ERROR + FAILED), nothing more and nothing out of order."""
    qstash, admin = clients
    path = f"/log-{uuid.uuid4().hex[:8]}"
    sink.scripts[path] = lambda n: (answers[min(n, len(answers)) - 1], {})
    published = await qstash.publish_json(sink.url(path), {"n": 1}, retries=retries)
    states = await final_states(admin, published.message_id, expected[-1])
    assert states == expected
    assert len(sink.at(path)) == len(answers)
