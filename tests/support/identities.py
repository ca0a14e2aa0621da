"""Fresh identities, so tests sharing one Redis never meet each other's budgets or data:
email addresses (the per-recipient limit, the sink's inbox) and client addresses (the
per-client rate limit)."""

from __future__ import annotations

import itertools
import uuid

_hosts = itertools.count(1)


def unique_email(tag: str = "test") -> str:
    """An address no other test used: `{tag}-{random}@example.com`."""
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


def fresh_address() -> str:
    """A client address no other run used (a random /16 of 10/8, then a counter)."""
    n = uuid.uuid4().int
    return f"10.{n % 256}.{(n >> 8) % 256}.{next(_hosts) % 250 + 1}"
