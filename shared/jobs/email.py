"""Email for the confirmation job: the pure builder and the Resend-compatible sender.

    message = build_confirmation_email(order, sender="Shop <orders@example.com>")
    email_id = await EmailSender(transport, api_key=key).send(message, idempotency_key=...)

Building does no I/O and reads no clock, so the job handler rebuilds the same message
on every QStash retry; the provider's `Idempotency-Key` (same key within 24 h: sent
once) is what makes those retries safe. Standard library only (imports in Pyodide).
"""

from shared.jobs.email_message import (
    EmailMessage,
    LineItem,
    OrderSummary,
    build_confirmation_email,
    format_money,
    short_order_id,
)
from shared.jobs.email_sender import (
    DEFAULT_API_URL,
    DEFAULT_DEADLINE,
    EmailError,
    EmailSender,
    EmailSendError,
    build_send_request,
    check_idempotency_key,
    parse_send_response,
)

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_DEADLINE",
    "EmailError",
    "EmailMessage",
    "EmailSendError",
    "EmailSender",
    "LineItem",
    "OrderSummary",
    "build_confirmation_email",
    "build_send_request",
    "check_idempotency_key",
    "format_money",
    "parse_send_response",
    "short_order_id",
]
