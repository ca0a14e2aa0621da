"""What the sink accepts and keeps: request validation and the captured email, no HTTP.

Errors mirror Resend's JSON shape, ``{"statusCode", "name", "message"}``, so a
client's error handling is exercised against the same fields it meets in production.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_RECIPIENTS = 50  # Resend's limit per email
MAX_IDEMPOTENCY_KEY = 256


class ApiError(Exception):
    """An error answer in Resend's shape; the app turns it into a JSON response."""

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message

    def to_json(self) -> dict[str, object]:
        return {"statusCode": self.status, "name": self.name, "message": self.message}


def _invalid(message: str) -> ApiError:
    return ApiError(422, "validation_error", message)


@dataclass(frozen=True, slots=True)
class EmailDraft:
    """A validated ``POST /emails`` body; ``fingerprint`` identifies the payload for idempotency.

    The fingerprint hashes the whole JSON body with sorted keys, so a retry is
    "the same request" exactly when it carries the same fields and values
    (``"to": "a@x"`` and ``"to": ["a@x"]`` count as different, as Resend may).
    """

    sender: str
    to: tuple[str, ...]
    subject: str
    html: str | None
    text: str | None
    fingerprint: str


def _address_field(payload: dict[str, object], name: str) -> tuple[str, ...]:
    raw = payload.get(name)
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not values:
        raise _invalid(f"The `{name}` field must be a string or a non-empty list of strings.")
    if len(values) > MAX_RECIPIENTS:
        raise _invalid(f"The `{name}` field accepts at most {MAX_RECIPIENTS} addresses.")
    for value in values:
        if not isinstance(value, str) or "@" not in value or any(c in value for c in "\r\n"):
            raise _invalid(
                f"Invalid `{name}` field. The email address needs to follow the "
                "`email@example.com` or `Name <email@example.com>` format."
            )
    return tuple(str(v) for v in values)


def _optional_text(payload: dict[str, object], name: str) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"The `{name}` field must be a string.")
    return value or None


def parse_email(body: bytes) -> EmailDraft:
    """Validates a ``POST /emails`` body: ``from``, ``to``, ``subject``, ``html`` or ``text``."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise _invalid("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise _invalid("The request body must be a JSON object.")
    sender = payload.get("from")
    if not isinstance(sender, str) or "@" not in sender or any(c in sender for c in "\r\n"):
        raise _invalid("The `from` field must be a string like `Name <email@example.com>`.")
    to = _address_field(payload, "to")
    subject = payload.get("subject")
    if not isinstance(subject, str) or not subject.strip():
        raise _invalid("The `subject` field is missing or empty.")
    html_body = _optional_text(payload, "html")
    text_body = _optional_text(payload, "text")
    if html_body is None and text_body is None:
        raise _invalid("Either `html` or `text` must be provided.")
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return EmailDraft(
        sender=sender,
        to=to,
        subject=subject,
        html=html_body,
        text=text_body,
        fingerprint=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
    )


def parse_idempotency_key(raw: str | None) -> str | None:
    """The ``Idempotency-Key`` header: absent is fine, present must be 1-256 characters."""
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_IDEMPOTENCY_KEY:
        raise ApiError(400, "invalid_idempotency_key", "The key must be between 1-256 chars.")
    return raw


def mailbox(address: str) -> str:
    """``"Ann <ann@x.org>"`` -> ``"ann@x.org"``: what the ``?to=`` filter compares."""
    start, end = address.rfind("<"), address.rfind(">")
    bare = address[start + 1 : end] if 0 <= start < end else address
    return bare.strip().lower()


@dataclass(frozen=True, slots=True)
class CapturedEmail:
    """One email the sink accepted; ``created_at`` is Unix seconds."""

    id: str
    draft: EmailDraft
    created_at: float
    idempotency_key: str | None

    @property
    def created_at_iso(self) -> str:
        return datetime.fromtimestamp(self.created_at, UTC).isoformat(timespec="milliseconds")

    def to_json(self) -> dict[str, object]:
        """The ``GET /emails`` item: ``id, from, to, subject, html, text, created_at, ...``."""
        return {
            "id": self.id,
            "from": self.draft.sender,
            "to": list(self.draft.to),
            "subject": self.draft.subject,
            "html": self.draft.html,
            "text": self.draft.text,
            "created_at": self.created_at_iso,
            "idempotency_key": self.idempotency_key,
        }
