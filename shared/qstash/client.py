"""The async QStash publisher.

    qstash = QStash.from_env(env)        # QSTASH_TOKEN, QSTASH_URL (default: the public endpoint)
    await qstash.publish_json(f"{app_url}/api/jobs/send-confirmation", body, retries=3, delay="5s")

Publishing is not idempotent: a publish whose response was lost may already be
queued. So a transport failure is retried only when the message carries a
deduplication id (or content-based deduplication), where QStash answers a
resend with 202 and the original id; otherwise the `TransportError` surfaces.

Every call has a TOTAL deadline (10 s unless configured, `deadline=` per call):
the whole exchange, retries and their waits included, not httpx's per-phase
timeouts. A server that accepts the connection and never answers costs at most
the deadline, then `TransportTimeout`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Unpack

from shared.qstash.connection import (
    DEFAULT_DEADLINE,
    DEFAULT_URL,
    TOKEN_VAR,
    URL_VAR,
    QStashConnection,
)
from shared.qstash.publish import (
    BatchMessage,
    PublishKwargs,
    PublishOptions,
    PublishResult,
    build_batch_request,
    build_publish_request,
    json_body,
    parse_batch_response,
    parse_publish_response,
)


class QStash(QStashConnection):
    """Async client for publishing QStash messages over any `Transport`.

    Built like every QStash client (`QStashConnection`): `QStash(token, url=...,
    transport=..., deadline=..., retry_attempts=...)` or `QStash.from_env(env)`.
    """

    async def publish(
        self,
        url: str,
        body: bytes | str = b"",
        *,
        content_type: str | None = None,
        deadline: float | None = None,
        **options: Unpack[PublishKwargs],
    ) -> PublishResult:
        """Publishes a raw body to `url`; QStash delivers it with `content_type` unchanged.

        `deadline` (seconds) bounds this call in total; `timeout` is QStash's own
        delivery timeout (`Upstash-Timeout`), not ours.
        """
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        opts = PublishOptions(content_type=content_type, **options)
        limit = self._deadline_for(deadline)
        request = build_publish_request(self._url, self._token, url, data, opts)
        response = await self._send(request, retryable=opts.deduplicated, deadline=limit)
        return parse_publish_response(response)

    async def publish_json(
        self,
        url: str,
        body: object,
        *,
        deadline: float | None = None,
        **options: Unpack[PublishKwargs],
    ) -> PublishResult:
        """Publishes `body` serialized as JSON (`Content-Type: application/json`).

        await qstash.publish_json(job_url, {"orderId": 42}, retries=3, delay="5s",
                                  deduplication_id="order-42", deadline=2.0)
        """
        return await self.publish(
            url, json_body(body), content_type="application/json", deadline=deadline, **options
        )

    async def batch_json(
        self, messages: Sequence[Mapping[str, Any]], *, deadline: float | None = None
    ) -> list[PublishResult]:
        """Publishes several JSON messages in one request; one result per message, in order.

            await qstash.batch_json([{"url": a, "body": {"n": 1}}, {"url": b, "retries": 0}])

        Each item takes `url`, `body` and the keyword options of `publish_json`.
        """
        batch: list[BatchMessage] = []
        for item in messages:
            fields = dict(item)
            try:
                url = fields.pop("url")
            except KeyError:
                raise ValueError("every batch item needs a 'url'") from None
            body = json_body(fields.pop("body", None))
            try:
                options = PublishOptions(content_type="application/json", **fields)
            except TypeError as exc:
                raise ValueError(f"unknown batch option: {exc}") from None
            batch.append(BatchMessage(url=str(url), body=body, options=options))
        limit = self._deadline_for(deadline)
        request = build_batch_request(self._url, self._token, batch)
        retryable = all(m.options.deduplicated for m in batch)
        response = await self._send(request, retryable=retryable, deadline=limit)
        return parse_batch_response(response, len(batch))


__all__ = ["DEFAULT_DEADLINE", "DEFAULT_URL", "TOKEN_VAR", "URL_VAR", "QStash"]
