"""The order confirmation email as a pure function of the order (no I/O, no clock).

    message = build_confirmation_email(order, sender="Shop <orders@example.com>")

The job handler rebuilds the same message on every QStash retry; every
user-supplied value is HTML-escaped. The recipient must pass the API's own
address rule (`shared.jobs.email_address`), so what the API accepted can be built.
Standard library only (imports in Pyodide).
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from shared.jobs.email_address import check_email

log = logging.getLogger(__name__)

SHORT_ID_LENGTH = 8
_CURRENCY = re.compile(r"[A-Z]{3}")

LineItem = tuple[str, int, int]
"""`(sku, quantity, unit_price_cents)`."""


def single_line(value: str) -> str:
    """Control characters (CR/LF above all) become spaces: header values stay one line."""
    return "".join(ch if ch.isprintable() else " " for ch in value).strip()


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
        check_email(self.customer_email, "customer_email")  # the API's rule, once more
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
    return single_line(order_id)[:SHORT_ID_LENGTH].strip()


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
    if not sender.strip() or single_line(sender) != sender:
        raise ValueError("sender is empty or contains control characters")
    return EmailMessage(
        sender=sender,
        to=order.customer_email,
        subject=f"Order {short_order_id(order.order_id)} confirmed",
        text=_text_body(order),
        html=_html_body(order),
    )
