"""Sending email through Resend's HTTP API (or a compatible one, like the devstack sink).

    sender = EmailSender(transport, api_key=settings.email_api_key)
    email_id = await sender.send(message, idempotency_key=f"order-confirmation/{order_id}")

Errors join the core's one tree (`shared.errors`):

    UpstashError
    └── EmailError                    base of the email errors
        └── EmailSendError(status, message, retryable, code, retry_after)

`retryable` is the decision the job handler needs: True (transport failure,
deadline passed, 408, 429, 5xx, a concurrent request with the same key) -> drop
the lease and answer 5xx so QStash retries; False (any other 4xx) -> answer 489
so QStash stops. Messages never carry the API key or the recipient address.

Every send has one total deadline (`deadline`, 8 s by default) around the whole
exchange, connecting and reading the body included, not a per-phase timeout: a
provider that accepts the connection and never answers costs the job at most
that long, well inside Vercel's `maxDuration` (30 s).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence

from shared.config import check_deadline, check_url
from shared.errors import TransportError, TransportTimeout, UpstashError
from shared.http.transport import HttpRequest, HttpResponse, Transport, send_within
from shared.jobs.email_message import EmailMessage, single_line

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.resend.com"
DEFAULT_DEADLINE = 8.0
MAX_IDEMPOTENCY_KEY = 256  # Resend: "The key must be between 1-256 chars."
_MAX_ERROR_TEXT = 300


class EmailError(UpstashError):
    """Base class of the email errors."""


class EmailSendError(EmailError):
    """The provider did not accept the email.

    `status` is the HTTP status, or None when no response arrived (transport
    failure or timeout); `code` is the provider's error name (`validation_error`,
    `rate_limit_exceeded`...) when it sent one; `retry_after` is in seconds.
    """

    def __init__(
        self,
        status: int | None,
        message: str,
        retryable: bool,
        *,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.retryable = retryable
        self.code = code
        self.retry_after = retry_after
        where = "no response" if status is None else f"HTTP {status}"
        super().__init__(f"email provider {where}: {message}")


def check_idempotency_key(key: str) -> str:
    """A key Resend accepts: 1 to 256 printable characters."""
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or single_line(key) != key:
        raise ValueError(f"idempotency_key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters")
    return key


def build_send_request(
    message: EmailMessage, *, api_url: str, api_key: str, idempotency_key: str, timeout: float
) -> HttpRequest:
    """`POST {api_url}/emails` with the bearer key, the idempotency key and the JSON body."""
    body = {
        "from": message.sender,
        "to": [message.to],
        "subject": message.subject,
        "html": message.html,
        "text": message.text,
    }
    return HttpRequest(
        method="POST",
        url=f"{api_url}/emails",
        headers={
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Idempotency-Key": check_idempotency_key(idempotency_key),
        },
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        timeout=timeout,
    )


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = re.sub(re.escape(secret), "[redacted]", text, flags=re.IGNORECASE)
    return text[:_MAX_ERROR_TEXT]


def _retry_after(response: HttpResponse) -> float | None:
    raw = response.header("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None  # an HTTP date: rare from APIs, and QStash's own backoff is fine then


def _is_retryable(status: int, code: str | None) -> bool:
    # A concurrent request with the same key may still succeed: ask again later.
    return status in (408, 429) or status >= 500 or code == "concurrent_idempotent_requests"


def parse_send_response(response: HttpResponse, *, redact: Sequence[str] = ()) -> str:
    """The email id of a 2xx answer, else `EmailSendError`; `redact` strings never reach it."""
    try:
        data = json.loads(response.body) if response.body else None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        data = None
    fields = data if isinstance(data, dict) else {}
    if 200 <= response.status < 300:
        email_id = fields.get("id")
        if isinstance(email_id, str) and email_id:
            return email_id
        # Probably sent; resending under the same idempotency key is safe.
        raise EmailSendError(response.status, "response carries no email id", retryable=True)
    code = fields.get("name") if isinstance(fields.get("name"), str) else None
    text = fields.get("message") or fields.get("error")
    detail = str(text) if text else ("error response" if data is not None else "non-JSON body")
    raise EmailSendError(
        response.status,
        _redact(detail, redact),
        retryable=_is_retryable(response.status, code),
        code=code,
        retry_after=_retry_after(response),
    )


class EmailSender:
    """Sends `EmailMessage`s through Resend's API (or the devstack email sink).

    It never retries by itself: the job runs under QStash, whose retries (with the
    same idempotency key) are bounded and survive a crashed instance. `deadline`
    (seconds) bounds each `send` as a whole.
    """

    def __init__(
        self,
        transport: Transport,
        api_url: str = DEFAULT_API_URL,
        *,
        api_key: str,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        key = api_key.strip()
        if not key or any(ch.isspace() or not ch.isprintable() for ch in key):
            raise ValueError("api_key is empty or contains whitespace (a paste error?)")
        check_deadline(deadline)
        self._transport = transport
        self._api_url = check_url("api_url", api_url)
        self._api_key = key
        self._deadline = float(deadline)

    def __repr__(self) -> str:  # never show the key
        return f"EmailSender(api_url={self._api_url!r}, deadline={self._deadline:g})"

    async def send(self, message: EmailMessage, *, idempotency_key: str) -> str:
        """Sends `message` once per `idempotency_key` (24 h) and returns the provider's id."""
        request = build_send_request(
            message,
            api_url=self._api_url,
            api_key=self._api_key,
            idempotency_key=idempotency_key,
            timeout=self._deadline,
        )
        try:  # the deadline bounds the whole exchange, whatever phase it hangs in
            response = await send_within(self._transport, request, "email")
        except TransportTimeout as exc:
            late = f"no answer within the {self._deadline:g}s deadline"
            raise EmailSendError(None, late, retryable=True) from exc
        except TransportError as exc:  # its message names the method and error type only
            raise EmailSendError(None, str(exc), retryable=True) from exc
        email_id = parse_send_response(response, redact=(self._api_key, message.to))
        log.debug("email accepted by the provider, id %s", email_id)
        return email_id
