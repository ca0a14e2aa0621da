"""The order confirmation email: a pure builder and an async sender for Resend's HTTP API.

    message = build_confirmation_email(order, sender="Shop <orders@example.com>")
    sender = EmailSender(transport, api_key=settings.resend_api_key)
    email_id = await sender.send(message, idempotency_key=f"order-confirmation/{order.order_id}")

Building does no I/O and reads no clock, so the job handler can rebuild the same
message on every QStash retry; the provider's `Idempotency-Key` (same key within
24 h: sent once) is what makes those retries safe.

Errors join the core's one tree (`shared.errors`):

    UpstashError
    └── EmailError                    base of the email errors
        └── EmailSendError(status, message, retryable, code, retry_after)

`retryable` is the decision the job handler needs: True (transport failure,
timeout, 408, 429, 5xx, a concurrent request with the same key) -> drop the lease
and answer 5xx so QStash retries; False (any other 4xx) -> answer 489 so QStash
stops. Messages never carry the API key or the recipient address.

Standard library only: this module imports in Pyodide (no pydantic, no httpx).
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from shared.errors import TransportError, UpstashError
from shared.http.transport import HttpRequest, HttpResponse, Transport

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.resend.com"
DEFAULT_TIMEOUT = 5.0
MAX_IDEMPOTENCY_KEY = 256  # Resend: "The key must be between 1-256 chars."
SHORT_ID_LENGTH = 8
_CURRENCY = re.compile(r"[A-Z]{3}")
_MAX_ERROR_TEXT = 300

LineItem = tuple[str, int, int]
"""`(sku, quantity, unit_price_cents)`."""


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


def _single_line(value: str) -> str:
    """Control characters (CR/LF above all) become spaces: header values stay one line."""
    return "".join(ch if ch.isprintable() else " " for ch in value).strip()


def _check_address(field_name: str, value: str) -> None:
    if not value or "@" not in value or any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError(f"{field_name} must be one email address without spaces")


def _is_count(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """What the confirmation needs to know about an order; validated on creation.

    Amounts are integer minor units (cents) of `currency`, an ISO 4217 code; the
    email shows them with two decimals, so zero-decimal currencies (JPY) would
    need a table of exponents. `total_cents` is authoritative (it may include
    shipping or tax), so it is not recomputed from the items.
    """

    order_id: str
    customer_email: str
    items: tuple[LineItem, ...]
    currency: str
    total_cents: int
    created_at: str

    def __post_init__(self) -> None:
        if not self.order_id.strip():
            raise ValueError("order_id is empty")
        _check_address("customer_email", self.customer_email)
        items = tuple(tuple(item) for item in self.items)  # accept lists, store hashable tuples
        if not items:
            raise ValueError("an order needs at least one item")
        for item in items:
            if len(item) != 3:
                raise ValueError("each item is (sku, quantity, unit_price_cents)")
            sku, quantity, unit_price = item
            if not isinstance(sku, str) or not sku.strip():
                raise ValueError("an item sku is empty")
            if not _is_count(quantity, 1):
                raise ValueError("an item quantity must be an integer >= 1")
            if not _is_count(unit_price, 0):
                raise ValueError("an item unit_price_cents must be an integer >= 0")
        object.__setattr__(self, "items", items)
        if not _CURRENCY.fullmatch(self.currency):
            raise ValueError("currency must be a 3-letter upper-case ISO 4217 code")
        if not _is_count(self.total_cents, 0):
            raise ValueError("total_cents must be an integer >= 0")
        try:
            datetime.fromisoformat(self.created_at)
        except ValueError:
            raise ValueError("created_at must be an ISO 8601 timestamp") from None


@dataclass(frozen=True, slots=True)
class EmailMessage:
    """One email ready to send: one recipient, a subject, an HTML and a text body."""

    sender: str
    to: str
    subject: str
    text: str
    html: str


def format_money(cents: int, currency: str) -> str:
    """`1234, "EUR"` -> `"12.34 EUR"`; no thousands separator (it reads differently per locale)."""
    sign = "-" if cents < 0 else ""
    whole, fraction = divmod(abs(cents), 100)
    return f"{sign}{whole}.{fraction:02d} {currency}"


def short_order_id(order_id: str) -> str:
    """The first characters of the id: enough to recognise an order in a subject line."""
    return _single_line(order_id)[:SHORT_ID_LENGTH].strip()


_CELL = "padding:6px 12px;border-bottom:1px solid #ddd"
_NUM = f"{_CELL};text-align:right"


def _html_body(order: OrderSummary) -> str:
    e = html.escape
    rows = "".join(
        f'<tr><td style="{_CELL}">{e(sku)}</td>'
        f'<td style="{_NUM}">{quantity}</td>'
        f'<td style="{_NUM}">{e(format_money(price, order.currency))}</td>'
        f'<td style="{_NUM}">{e(format_money(price * quantity, order.currency))}</td></tr>'
        for sku, quantity, price in order.items
    )
    return (
        '<!doctype html><html><body style="font-family:sans-serif;color:#222">'
        '<h1 style="font-size:20px">Thank you for your order</h1>'
        f"<p>Order <strong>{e(order.order_id)}</strong>, placed {e(order.created_at)}.</p>"
        f"<p>A copy was sent to {e(order.customer_email)}.</p>"
        '<table style="border-collapse:collapse">'
        f'<thead><tr><th style="{_CELL};text-align:left">Item</th>'
        f'<th style="{_NUM}">Qty</th><th style="{_NUM}">Unit price</th>'
        f'<th style="{_NUM}">Amount</th></tr></thead>'
        f"<tbody>{rows}</tbody>"
        f'<tfoot><tr><th colspan="3" style="{_NUM}">Total</th>'
        f'<th style="{_NUM}">{e(format_money(order.total_cents, order.currency))}</th></tr>'
        "</tfoot></table></body></html>"
    )


def _text_body(order: OrderSummary) -> str:
    lines = [
        "Thank you for your order.",
        "",
        f"Order: {order.order_id}",
        f"Placed: {order.created_at}",
        "",
    ]
    for sku, quantity, price in order.items:
        amount = format_money(price * quantity, order.currency)
        lines.append(f"  {quantity} x {sku} @ {format_money(price, order.currency)} = {amount}")
    lines += ["", f"Total: {format_money(order.total_cents, order.currency)}", ""]
    return "\n".join(lines)


def build_confirmation_email(order: OrderSummary, *, sender: str) -> EmailMessage:
    """The confirmation for `order`, from `sender` (`"Shop <orders@example.com>"` works).

    Pure: the same order gives the same message, byte for byte. Every value that
    came from a user is HTML-escaped in the HTML body.
    """
    if not sender.strip() or _single_line(sender) != sender:
        raise ValueError("sender is empty or contains control characters")
    return EmailMessage(
        sender=sender,
        to=order.customer_email,
        subject=f"Order {short_order_id(order.order_id)} confirmed",
        text=_text_body(order),
        html=_html_body(order),
    )


def check_idempotency_key(key: str) -> str:
    """A key Resend accepts: 1 to 256 printable characters."""
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or _single_line(key) != key:
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


def _check_api_url(api_url: str) -> str:
    url = api_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("api_url must be an http(s) URL such as https://api.resend.com")
    return url


class EmailSender:
    """Sends `EmailMessage`s through Resend's API (or the devstack email sink).

    It never retries by itself: the job runs under QStash, whose retries (with the
    same idempotency key) are bounded and survive a crashed instance.
    """

    def __init__(
        self,
        transport: Transport,
        api_url: str = DEFAULT_API_URL,
        *,
        api_key: str,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        key = api_key.strip()
        if not key or any(ch.isspace() or not ch.isprintable() for ch in key):
            raise ValueError("api_key is empty or contains whitespace (a paste error?)")
        if timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        self._transport = transport
        self._api_url = _check_api_url(api_url)
        self._api_key = key
        self._timeout = timeout

    def __repr__(self) -> str:  # never show the key
        return f"EmailSender(api_url={self._api_url!r}, timeout={self._timeout:g})"

    async def send(self, message: EmailMessage, *, idempotency_key: str) -> str:
        """Sends `message` once per `idempotency_key` (24 h) and returns the provider's id."""
        request = build_send_request(
            message,
            api_url=self._api_url,
            api_key=self._api_key,
            idempotency_key=idempotency_key,
            timeout=self._timeout,
        )
        try:
            response = await self._transport.send(request)
        except TransportError as exc:  # its message names the method and error type only
            raise EmailSendError(None, str(exc), retryable=True) from exc
        email_id = parse_send_response(response, redact=(self._api_key, message.to))
        log.debug("email accepted by the provider, id %s", email_id)
        return email_id
