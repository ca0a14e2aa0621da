"""QStash operations for a deployment: the flush schedule, the dead letters, a message's log.

The command line (`python -m tools.qstash ...`) is a thin shell over these; call them
from code the same way:

    admin = QStashAdmin.from_env(env)
    await create_flush_schedule(admin, settings.app_url, forward_headers=settings.forward_headers)
    for dead in await dead_letters(admin):
        print(dead.dlq_id, dead.message.url, dead.response_status)
    await retry_dead_letters(admin, [dead.dlq_id])
    for event in await message_log(admin, message_id):
        print(event.time, event.state, event.error or "")
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from shared.qstash.admin import QStashAdmin
from shared.qstash.manage import DlqMessage, LogEvent
from shared.routes import FLUSH_OUTBOX, public_url

FLUSH_CRON = "*/5 * * * *"
FLUSH_RETRIES = 2
_NOT_ID = re.compile(r"[^A-Za-z0-9._-]+")
MAX_PAGES = 100


def flush_schedule_id(app_url: str) -> str:
    """One schedule per deployment, named after its host: re-running replaces it."""
    host = app_url.split("://", 1)[-1].strip("/")
    return ("flush-outbox-" + _NOT_ID.sub("-", host))[:128]


async def create_flush_schedule(
    admin: QStashAdmin,
    app_url: str,
    *,
    cron: str = FLUSH_CRON,
    forward_headers: Mapping[str, str] | None = None,
) -> str:
    """Creates (or replaces) the schedule that calls `GET {app_url}/api/cron/flush-outbox`
    signed by QStash on `cron`; returns its id. `forward_headers` (the Vercel protection
    bypass) are forwarded with every call."""
    return await admin.create_schedule(
        public_url(app_url, FLUSH_OUTBOX),
        cron,
        schedule_id=flush_schedule_id(app_url),
        method="GET",
        retries=FLUSH_RETRIES,
        headers=dict(forward_headers or {}),
    )


async def dead_letters(admin: QStashAdmin, *, url: str | None = None) -> list[DlqMessage]:
    """Every dead-lettered message (of one destination URL when given), page by page."""
    found: list[DlqMessage] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await admin.list_dlq(
            cursor=cursor, count=100, filters={"url": url} if url is not None else None
        )
        found.extend(page.messages)
        cursor = page.cursor
        if cursor is None:
            break
    return found


async def retry_dead_letters(admin: QStashAdmin, dlq_ids: Sequence[str]) -> dict[str, str]:
    """Publishes each dead message again; dlq id -> the new message id."""
    return {dlq_id: await admin.retry_dlq(dlq_id) for dlq_id in dlq_ids}


async def delete_dead_letters(admin: QStashAdmin, dlq_ids: Sequence[str]) -> int:
    """Removes dead messages for good; how many were removed."""
    for dlq_id in dlq_ids:
        await admin.delete_dlq(dlq_id)
    return len(dlq_ids)


async def message_log(admin: QStashAdmin, message_id: str) -> list[LogEvent]:
    """A message's state changes, oldest first (CREATED, ACTIVE, RETRY, DELIVERED, ...)."""
    events: list[LogEvent] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await admin.logs(message_id, cursor=cursor)
        events.extend(page.events)
        cursor = page.cursor
        if cursor is None:
            break
    return sorted(reversed(events), key=lambda e: e.time)  # pages come newest first
