"""Optional analytics in @upstash/ratelimit's layout, with an expiry upstream never sets.

`ZINCRBY {prefix}:events:{hour_bucket_ms} 1 {"identifier":...,"success":...}` then
`PEXPIRE` (retention), in one `/pipeline` request started in the background.
"""

from __future__ import annotations

import json
from typing import Any

from shared.redis import Redis

HOUR_MS = 3_600_000


def event_key(prefix: str, now_ms: int) -> str:
    """The hourly bucket an event at `now_ms` is counted in."""
    return f"{prefix}:events:{now_ms // HOUR_MS * HOUR_MS}"


def event_member(identifier: str, success: bool | str) -> str:
    """The member upstream's dashboard reads: compact JSON, `identifier` then `success`."""
    return json.dumps({"identifier": identifier, "success": success}, separators=(",", ":"))


async def record_event(
    redis: Redis[Any],
    prefix: str,
    identifier: str,
    success: bool | str,
    now_ms: int,
    retention_ms: int,
) -> None:
    """Counts one decision (one request: ZINCRBY + PEXPIRE in a pipeline)."""
    key = event_key(prefix, now_ms)
    pipe = redis.pipeline()
    pipe.zincrby(key, 1, event_member(identifier, success))
    pipe.pexpire(key, retention_ms + HOUR_MS)
    await pipe.exec(raise_on_error=True)
