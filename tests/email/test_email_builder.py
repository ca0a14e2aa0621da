"""The pure confirmation-email builder: escaping, money, subject, validation, purity."""

from __future__ import annotations

import dataclasses

import pytest

from shared.jobs.email import (
    EmailMessage,
    OrderSummary,
    build_confirmation_email,
    format_money,
    short_order_id,
)

SENDER = "Shop <orders@shop.example>"


def make_order(**overrides: object) -> OrderSummary:
    fields: dict[str, object] = {
        "order_id": "ord_7f3a9c21b0",
        "customer_email": "ann@example.com",
        "items": (("SKU-1", 2, 1234), ("SKU-2", 1, 99)),
        "currency": "EUR",
        "total_cents": 2567,
        "created_at": "2024-05-01T12:30:00+00:00",
    }
    fields.update(overrides)
    return OrderSummary(**fields)  # type: ignore[arg-type]


def test_html_escapes_a_script_sku() -> None:
    """A sku carrying markup appears escaped in the HTML body, never as a tag."""
    order = make_order(items=(("<script>alert(1)</script>", 1, 100),), total_cents=100)
    message = build_confirmation_email(order, sender=SENDER)
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message.html


def test_html_escapes_email_and_order_id() -> None:
    """The customer address and the order id are escaped, quotes and ampersands included
    (the address rule allows & and ' but no < > or double quotes)."""
    order = make_order(customer_email="a&b'c@example.com", order_id='ord"<&>')
    message = build_confirmation_email(order, sender=SENDER)
    assert "a&amp;b&#x27;c@example.com" in message.html
    assert "ord&quot;&lt;&amp;&gt;" in message.html
    assert "a&b'c" not in message.html and 'ord"<&>' not in message.html


@pytest.mark.parametrize(
    ("cents", "expected"),
    [
        (1234, "12.34 EUR"),
        (5, "0.05 EUR"),
        (0, "0.00 EUR"),
        (100, "1.00 EUR"),
        (123456789, "1234567.89 EUR"),
        (-150, "-1.50 EUR"),
    ],
)
def test_format_money(cents: int, expected: str) -> None:
    """Cents become two-decimal amounts followed by the currency code."""
    assert format_money(cents, "EUR") == expected


def test_totals_in_both_bodies() -> None:
    """Line amounts (quantity x unit price) and the order total appear in HTML and text."""
    message = build_confirmation_email(make_order(), sender=SENDER)
    for body in (message.html, message.text):
        assert "12.34 EUR" in body  # unit price of SKU-1
        assert "24.68 EUR" in body  # 2 x 12.34
        assert "0.99 EUR" in body
        assert "25.67 EUR" in body  # the given total
    assert "  2 x SKU-1 @ 12.34 EUR = 24.68 EUR" in message.text
    assert "Total: 25.67 EUR" in message.text


def test_subject_uses_the_short_order_id() -> None:
    """The subject names the first eight characters of the order id."""
    message = build_confirmation_email(make_order(), sender=SENDER)
    assert message.subject == "Order ord_7f3a confirmed"
    assert build_confirmation_email(make_order(order_id="42"), sender=SENDER).subject == (
        "Order 42 confirmed"
    )


def test_subject_never_spans_lines() -> None:
    """Control characters in the order id cannot inject a header line into the subject."""
    assert short_order_id("a\r\nBcc: x") == "a  Bcc:"
    subject = build_confirmation_email(make_order(order_id="a\r\nBcc: x@y"), sender=SENDER).subject
    assert "\n" not in subject and "\r" not in subject


def test_message_fields() -> None:
    """The message goes from the given sender to the customer's address."""
    message = build_confirmation_email(make_order(), sender=SENDER)
    assert message.sender == SENDER
    assert message.to == "ann@example.com"
    assert message.text.startswith("Thank you for your order.")
    assert message.html.startswith("<!doctype html>")


def test_builder_is_pure() -> None:
    """The same order gives an equal message every time, and the order is not modified."""
    order = make_order()
    snapshot = dataclasses.replace(order)
    first = build_confirmation_email(order, sender=SENDER)
    second = build_confirmation_email(make_order(), sender=SENDER)
    assert first == second
    assert order == snapshot
    assert isinstance(first, EmailMessage)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.subject = "changed"  # type: ignore[misc]


def test_items_given_as_lists_are_stored_as_tuples() -> None:
    """Items arriving as JSON lists become tuples, so the summary stays hashable."""
    order = make_order(items=[["SKU-1", 1, 100]], total_cents=100)
    assert order.items == (("SKU-1", 1, 100),)
    hash(order)


@pytest.mark.parametrize(
    "overrides",
    [
        {"order_id": " "},
        {"customer_email": "no-at-sign"},
        {"customer_email": "ann@example.com\r\nBcc: eve@example.com"},
        {"items": ()},
        {"items": (("", 1, 100),)},
        {"items": (("SKU", 0, 100),)},
        {"items": (("SKU", True, 100),)},
        {"items": (("SKU", 1, -1),)},
        {"items": (("SKU", 1),)},
        {"currency": "eur"},
        {"currency": "EURO"},
        {"total_cents": -1},
        {"created_at": "yesterday"},
    ],
)
def test_order_summary_rejects_bad_values(overrides: dict[str, object]) -> None:
    """An order the email cannot describe honestly is refused with ValueError."""
    with pytest.raises(ValueError):
        make_order(**overrides)


def test_sender_with_a_line_break_is_refused() -> None:
    """A sender carrying CR/LF is refused instead of being sent."""
    with pytest.raises(ValueError):
        build_confirmation_email(make_order(), sender="Shop <a@b.c>\r\nBcc: eve@x.y")
