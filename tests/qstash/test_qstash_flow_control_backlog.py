"""Flow control holds back only its own key: a backlog of held messages larger than the
scheduler looks at per tick (`SCAN_LIMIT`) never delays messages of other keys, or none."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from qstash_sink import Sink

from devstack.qstash.delivery import SCAN_LIMIT
from tests.conftest import running_devstack

pytestmark = pytest.mark.integration


@pytest.fixture
def private_stack() -> Iterator[dict[str, Any]]:
    """A devstack of its own (QStash at TIME_SCALE): the backlog it is left with dies with it."""
    with running_devstack() as stack:
        yield stack.raw


async def test_a_held_backlog_beyond_the_scan_limit_does_not_starve_other_messages(
    private_stack: dict[str, Any], sink: Sink
) -> None:
    """SCAN_LIMIT + 50 messages held by one key's rate (1 per day) do not hold back a
    message published after them without a key, nor one under another key."""
    base = private_stack["qstash_url"]
    auth = {"Authorization": f"Bearer {private_stack['qstash_token']}"}
    held_key = f"held-{uuid.uuid4().hex[:8]}"
    backlog = [
        {
            "destination": sink.url("/held"),
            "headers": {
                "Upstash-Flow-Control-Key": held_key,
                "Upstash-Flow-Control-Value": "rate=1, period=1d",
                "Upstash-Retries": "0",
            },
            "body": "{}",
        }
        for _ in range(SCAN_LIMIT + 50)
    ]
    async with httpx.AsyncClient(headers=auth, timeout=60) as client:
        answer = await client.post(f"{base}/v2/batch", json=backlog)
        assert answer.status_code == 200, answer.text
        await sink.wait_for("/held", 1)  # the one the rate lets through; the rest wait
        started = time.monotonic()
        free = await client.post(f"{base}/v2/publish/{sink.url('/free')}", content=b"{}")
        other = await client.post(
            f"{base}/v2/publish/{sink.url('/other')}",
            content=b"{}",
            headers={
                "Upstash-Flow-Control-Key": f"other-{uuid.uuid4().hex[:8]}",
                "Upstash-Flow-Control-Value": "parallelism=1",
            },
        )
        assert free.status_code == other.status_code == 200
        await sink.wait_for("/free", 1, timeout=10)
        await sink.wait_for("/other", 1, timeout=10)
        assert time.monotonic() - started < 10
        info = await client.get(f"{base}/v2/flowControl/{held_key}")
    assert info.json()["waitListSize"] == SCAN_LIMIT + 49
    assert len(sink.at("/held")) == 1
