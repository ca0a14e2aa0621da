"""The local QStash keeps a key's delivery starts for as long as its rate period: a period
longer than a day (`rate=100, period=2d`, a provider's daily-ish quota) still holds."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from devstack.qstash.model import Message
from devstack.qstash.store import QStashStore

pytestmark = pytest.mark.integration
DAY_MS = 86_400_000


async def test_starts_older_than_a_day_stay_while_the_period_is_longer(
    fast_stack: dict[str, Any],
) -> None:
    """With a two-day period, a start 1.5 days ago still counts in the rate window."""
    store = QStashStore(str(fast_stack["redis_url"]), prefix=f"test:{uuid.uuid4().hex}:")
    key = "quota"
    t0 = 1_800_000_000_000

    def message(n: int) -> Message:
        return Message(
            id=f"msg_{n}",
            url="http://127.0.0.1:9/x",
            method="POST",
            body_b64="",
            headers={},
            max_retries=0,
            created_at=t0,
            not_before=t0,
            flow_key=key,
            flow_rate=1,
            flow_period_s=2 * DAY_MS // 1000,
        )

    try:
        for n, at in enumerate((t0, t0 + 3 * DAY_MS // 2)):
            await store.enqueue(message(n), at_ms=at)
            await store.start_attempt(
                message(n), at + 60_000, now_ms=at, attempt_id=f"att_{n}", window_ms=2 * DAY_MS
            )
        now = t0 + 3 * DAY_MS // 2
        assert await store.rate_starts(key, now - 2 * DAY_MS + 1) == [t0, now]
    finally:
        await store.close()
