"""The async client for QStash's management API: URL groups, schedules, messages, DLQ, logs.

    admin = QStashAdmin.from_env(env)        # QSTASH_TOKEN, QSTASH_URL (like `QStash`)
    await admin.create_schedule(f"{app_url}/api/cron/flush-outbox", "*/5 * * * *",
                                schedule_id="flush-outbox")
    page = await admin.list_dlq()
    for dead in page.messages:
        await admin.retry_dlq(dead.dlq_id)
    for event in (await admin.logs(message_id)).events: ...

Every call has a TOTAL deadline (10 s unless configured), retries and their waits
included; past it, `TransportTimeout`. Reads (GET) are retried on a transport failure
(bounded); writes are not, except those that are idempotent by design (deletes,
pause/resume, endpoint upserts, a schedule upsert with an id).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Unpack

from shared.qstash import manage as m
from shared.qstash.connection import QStashConnection
from shared.qstash.publish import PublishKwargs, PublishOptions, json_body


def _body(body: bytes | str | object, content_type: str | None) -> tuple[bytes, str | None]:
    if isinstance(body, bytes):
        return body, content_type
    if isinstance(body, str):
        return body.encode("utf-8"), content_type
    return json_body(body), content_type or "application/json"


class QStashAdmin(QStashConnection):
    """Manages QStash state over any `Transport`; never holds more than the token.

    Built like every QStash client (`QStashConnection`): `QStashAdmin(token, url=...,
    transport=..., deadline=...)` or `QStashAdmin.from_env(env)`.
    """

    # ------------------------------------------------------------ URL groups

    async def upsert_endpoints(self, group: str, endpoints: Sequence[m.Endpoint | str]) -> None:
        """Adds endpoints to `group`, creating it when new."""
        req = m.build_upsert_endpoints(self._url, self._token, group, endpoints)
        m.expect_ok(await self._send(req, retryable=True))

    async def remove_endpoints(self, group: str, endpoints: Sequence[m.Endpoint | str]) -> None:
        req = m.build_remove_endpoints(self._url, self._token, group, endpoints)
        m.expect_ok(await self._send(req, retryable=True))

    async def get_url_group(self, group: str) -> m.UrlGroup:
        req = m.build_get_url_group(self._url, self._token, group)
        return m.parse_url_group(await self._send(req, retryable=True))

    async def list_url_groups(self) -> list[m.UrlGroup]:
        req = m.build_list_url_groups(self._url, self._token)
        return m.parse_url_groups(await self._send(req, retryable=True))

    async def delete_url_group(self, group: str) -> None:
        req = m.build_delete_url_group(self._url, self._token, group)
        m.expect_ok(await self._send(req, retryable=True))

    async def publish_to_group(
        self,
        group: str,
        body: bytes | str | object = b"",
        *,
        content_type: str | None = None,
        **options: Unpack[PublishKwargs],
    ) -> list[m.GroupPublishResult]:
        """One message per endpoint of `group`; a non-bytes/str body is sent as JSON."""
        data, ctype = _body(body, content_type)
        opts = PublishOptions(content_type=ctype, **options)
        req = m.build_publish_to_group(self._url, self._token, group, data, opts)
        return m.parse_group_publish(await self._send(req, retryable=opts.deduplicated))

    # ------------------------------------------------------------ schedules

    async def create_schedule(
        self,
        destination: str,
        cron: str,
        body: bytes | str | object = b"",
        *,
        schedule_id: str | None = None,
        content_type: str | None = None,
        **options: Unpack[PublishKwargs],
    ) -> str:
        """Creates (or, with `schedule_id`, replaces) a schedule; returns its id."""
        data, ctype = _body(body, content_type)
        opts = PublishOptions(content_type=ctype, **options)
        req = m.build_create_schedule(
            self._url, self._token, destination, cron, data, opts, schedule_id=schedule_id
        )
        return m.parse_schedule_id(await self._send(req, retryable=schedule_id is not None))

    async def get_schedule(self, schedule_id: str) -> m.Schedule:
        req = m.build_get_schedule(self._url, self._token, schedule_id)
        return m.parse_schedule(await self._send(req, retryable=True))

    async def list_schedules(self) -> list[m.Schedule]:
        req = m.build_list_schedules(self._url, self._token)
        return m.parse_schedules(await self._send(req, retryable=True))

    async def pause_schedule(self, schedule_id: str) -> None:
        req = m.build_pause_schedule(self._url, self._token, schedule_id)
        m.expect_ok(await self._send(req, retryable=True))

    async def resume_schedule(self, schedule_id: str) -> None:
        req = m.build_resume_schedule(self._url, self._token, schedule_id)
        m.expect_ok(await self._send(req, retryable=True))

    async def delete_schedule(self, schedule_id: str) -> None:
        req = m.build_delete_schedule(self._url, self._token, schedule_id)
        m.expect_ok(await self._send(req, retryable=True))

    # ------------------------------------------------------------ messages, DLQ, logs

    async def get_message(self, message_id: str) -> m.MessageInfo:
        """A message not yet delivered (404 `QStashError` once delivered or dead)."""
        req = m.build_get_message(self._url, self._token, message_id)
        return m.parse_message(await self._send(req, retryable=True))

    async def cancel_message(self, message_id: str) -> None:
        req = m.build_cancel_message(self._url, self._token, message_id)
        m.expect_ok(await self._send(req, retryable=True))

    async def list_dlq(
        self,
        *,
        cursor: str | None = None,
        count: int | None = None,
        filters: Mapping[str, str | int] | None = None,
    ) -> m.DlqPage:
        req = m.build_list_dlq(self._url, self._token, cursor=cursor, count=count, filters=filters)
        return m.parse_dlq_page(await self._send(req, retryable=True))

    async def get_dlq(self, dlq_id: str) -> m.DlqMessage:
        req = m.build_get_dlq(self._url, self._token, dlq_id)
        return m.parse_dlq_message(await self._send(req, retryable=True))

    async def delete_dlq(self, dlq_id: str) -> None:
        req = m.build_delete_dlq(self._url, self._token, dlq_id)
        m.expect_ok(await self._send(req, retryable=True))

    async def retry_dlq(self, dlq_id: str, **options: Unpack[PublishKwargs]) -> str:
        """Publishes the dead message again (options override its own); the new message id."""
        opts = PublishOptions(**options) if options else None
        req = m.build_retry_dlq(self._url, self._token, dlq_id, opts)
        return m.parse_retry(await self._send(req))

    async def logs(
        self,
        message_id: str | None = None,
        *,
        state: str | None = None,
        cursor: str | None = None,
        count: int | None = None,
    ) -> m.LogPage:
        """Log events (newest first), of one message when `message_id` is given."""
        req = m.build_list_events(
            self._url, self._token, message_id=message_id, state=state, cursor=cursor, count=count
        )
        return m.parse_log_page(await self._send(req, retryable=True))

    async def flow_control(self, key: str) -> m.FlowControlInfo:
        req = m.build_get_flow_control(self._url, self._token, key)
        return m.parse_flow_control_info(await self._send(req, retryable=True))
