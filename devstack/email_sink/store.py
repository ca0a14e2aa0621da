"""In-memory mailbox with Resend's idempotency rule: one key, one email, for 24 hours.

Memory is enough for a sink: it lives as long as the devstack and tests read it
over HTTP. Every method is synchronous, so a request handler checks and records
an idempotency key without yielding to another request in between; that is why
the sink never needs Resend's ``concurrent_idempotent_requests`` (409) answer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from devstack.email_sink.model import ApiError, CapturedEmail, EmailDraft, mailbox

IDEMPOTENCY_TTL = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class _KeyRecord:
    fingerprint: str
    email_id: str
    expires_at: float


def _new_id() -> str:
    return str(uuid.uuid4())


class EmailStore:
    """Captured emails in arrival order, plus the idempotency keys seen in the last 24 h.

    ``clock`` returns Unix seconds; tests pass a fake one to cross the 24 h line
    without waiting.
    """

    def __init__(
        self, clock: Callable[[], float] = time.time, new_id: Callable[[], str] = _new_id
    ) -> None:
        self._clock = clock
        self._new_id = new_id
        self._emails: dict[str, CapturedEmail] = {}  # insertion order = arrival order
        self._keys: dict[str, _KeyRecord] = {}

    def add(self, draft: EmailDraft, idempotency_key: str | None) -> tuple[CapturedEmail, bool]:
        """Stores ``draft``: ``(email, True)``; a replayed key gives ``(first email, False)``.

        The same key with a different payload raises ``ApiError(409,
        "invalid_idempotent_request")`` and stores nothing, as Resend does.
        """
        now = self._clock()
        self._forget_expired(now)
        if idempotency_key is not None:
            record = self._keys.get(idempotency_key)
            if record is not None:
                if record.fingerprint != draft.fingerprint:
                    raise ApiError(
                        409,
                        "invalid_idempotent_request",
                        "Same idempotency key used with a different request payload.",
                    )
                return self._emails[record.email_id], False
        email = CapturedEmail(
            id=self._new_id(), draft=draft, created_at=now, idempotency_key=idempotency_key
        )
        self._emails[email.id] = email
        if idempotency_key is not None:
            self._keys[idempotency_key] = _KeyRecord(
                draft.fingerprint, email.id, now + IDEMPOTENCY_TTL
            )
        return email, True

    def _forget_expired(self, now: float) -> None:
        expired = [key for key, record in self._keys.items() if record.expires_at <= now]
        for key in expired:
            del self._keys[key]

    def list(self, to: str | None = None) -> list[CapturedEmail]:
        """Oldest first; ``to`` keeps emails with that recipient (bare address, any case)."""
        emails = list(self._emails.values())
        if to is None:
            return emails
        wanted = mailbox(to)
        return [e for e in emails if any(mailbox(r) == wanted for r in e.draft.to)]

    def get(self, email_id: str) -> CapturedEmail | None:
        return self._emails.get(email_id)

    def clear(self) -> int:
        """Forgets every email and every idempotency key (a fresh sink); returns the count."""
        count = len(self._emails)
        self._emails.clear()
        self._keys.clear()
        return count


@dataclass(frozen=True, slots=True)
class InjectedFailure:
    """The answer a failed ``POST /emails`` gets instead of being stored."""

    status: int
    retry_after: int | None = None


class FailureSwitch:
    """Devstack-only: makes the next ``count`` sends fail with ``status``."""

    def __init__(self) -> None:
        self._remaining = 0
        self._failure = InjectedFailure(500)

    def arm(self, count: int, failure: InjectedFailure) -> None:
        self._remaining = count
        self._failure = failure

    @property
    def remaining(self) -> int:
        return self._remaining

    def take(self) -> InjectedFailure | None:
        """The failure to answer with now, if one is armed (and counts it down)."""
        if self._remaining <= 0:
            return None
        self._remaining -= 1
        return self._failure
