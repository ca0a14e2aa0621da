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

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any, Unpack

from shared.config import check_token, check_url
from shared.errors import ConfigError, TransportError, TransportTimeout
from shared.http.transport import HttpRequest, HttpResponse, Transport
from shared.qstash.publish import (
    BatchMessage,
    PublishKwargs,
    PublishOptions,
    PublishResult,
    build_batch_request,
    build_publish_request,
    parse_batch_response,
    parse_publish_response,
)

DEFAULT_URL = "https://qstash.upstash.io"
TOKEN_VAR = "QSTASH_TOKEN"  # noqa: S105 (a variable name, not a secret)
URL_VAR = "QSTASH_URL"
DEFAULT_DEADLINE = 10.0
RETRY_ATTEMPTS = 3
RETRY_BASE_DELAY = 0.2


def _default_transport() -> Transport:
    from shared.http.httpx_transport import HttpxTransport  # CPython only

    return HttpxTransport()


def _json_body(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class QStash:
    """Async client for publishing QStash messages over any `Transport`."""

    def __init__(
        self,
        token: str,
        *,
        url: str = DEFAULT_URL,
        transport: Transport | None = None,
        deadline: float = DEFAULT_DEADLINE,
        retry_attempts: int = RETRY_ATTEMPTS,
    ) -> None:
        _check_deadline(deadline)
        if retry_attempts < 1:
            raise ValueError("retry_attempts must be >= 1 (1 means no retry)")
        self._token = check_token("token", token)
        self._url = check_url("url", url)
        self._transport = transport if transport is not None else _default_transport()
        self._owns_transport = transport is None
        self._deadline = deadline
        self._attempts = retry_attempts

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        transport: Transport | None = None,
        deadline: float = DEFAULT_DEADLINE,
    ) -> QStash:
        """Reads `QSTASH_TOKEN` (required) and `QSTASH_URL`; `ConfigError` names a bad variable."""
        token = env.get(TOKEN_VAR)
        if token is None or not str(token).strip():
            raise ConfigError(TOKEN_VAR, "is not set")
        raw_url = env.get(URL_VAR)
        url = check_url(URL_VAR, str(raw_url)) if raw_url and str(raw_url).strip() else DEFAULT_URL
        return cls(
            check_token(TOKEN_VAR, str(token)), url=url, transport=transport, deadline=deadline
        )

    @property
    def url(self) -> str:
        return self._url

    @property
    def deadline(self) -> float:
        """Seconds one call may take in total (retries included) unless it passes its own."""
        return self._deadline

    def __repr__(self) -> str:  # never show the token
        return f"QStash(url={self._url!r}, deadline={self._deadline:g})"

    async def aclose(self) -> None:
        """Closes the transport if this client created it."""
        close = getattr(self._transport, "aclose", None)
        if self._owns_transport and close is not None:
            await close()

    def _deadline_for(self, deadline: float | None) -> float:
        return self._deadline if deadline is None else _check_deadline(deadline)

    async def _send(
        self, request: HttpRequest, *, retryable: bool, deadline: float
    ) -> HttpResponse:
        """One exchange under a total deadline; a transport failure is retried (bounded by
        attempts and by the deadline) only when `retryable`."""
        try:
            async with asyncio.timeout(deadline):
                attempt = 1
                while True:
                    try:
                        return await self._transport.send(request)
                    except TransportError:
                        if not retryable or attempt >= self._attempts:
                            raise
                        await asyncio.sleep(RETRY_BASE_DELAY * 2 ** (attempt - 1))
                        attempt += 1
        except TimeoutError:
            raise TransportTimeout(f"QStash request timed out after {deadline:g}s") from None

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
        request = build_publish_request(self._url, self._token, url, data, opts, timeout=limit)
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
            url, _json_body(body), content_type="application/json", deadline=deadline, **options
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
            body = _json_body(fields.pop("body", None))
            try:
                options = PublishOptions(content_type="application/json", **fields)
            except TypeError as exc:
                raise ValueError(f"unknown batch option: {exc}") from None
            batch.append(BatchMessage(url=str(url), body=body, options=options))
        limit = self._deadline_for(deadline)
        request = build_batch_request(self._url, self._token, batch, timeout=limit)
        retryable = all(m.options.deduplicated for m in batch)
        response = await self._send(request, retryable=retryable, deadline=limit)
        return parse_batch_response(response, len(batch))


def _check_deadline(deadline: float) -> float:
    if isinstance(deadline, bool) or not deadline > 0:
        raise ValueError("deadline must be > 0 seconds")
    return deadline
