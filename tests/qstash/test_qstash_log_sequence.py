"""The local QStash's log records every state change of a message, in order: a delivery, a
retry sequence ending in the DLQ, and a retry ending in a delivery."""

from __future__ import annotations

import uuid

import pytest
from qstash_sink import Sink, logged_states

from shared.qstash import QStash, QStashAdmin

pytestmark = pytest.mark.integration


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
    qstash: QStash,
    admin: QStashAdmin,
    sink: Sink,
    answers: list[int],
    retries: int,
    expected: list[str],
) -> None:
    """CREATED, then per attempt ACTIVE and its outcome (ERROR + RETRY, or the last one's
    DELIVERED / ERROR + FAILED), nothing more and nothing out of order."""
    path = f"/log-{uuid.uuid4().hex[:8]}"
    sink.scripts[path] = lambda n: (answers[min(n, len(answers)) - 1], {})
    published = await qstash.publish_json(sink.url(path), {"n": 1}, retries=retries)
    states = await logged_states(admin, published.message_id, until=expected[-1])
    assert states == expected
    assert len(sink.at(path)) == len(answers)
