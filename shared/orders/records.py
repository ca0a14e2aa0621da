"""Orders as stored data: ids, access tokens, keys and the JSON record (stdlib only).

Access tokens are DERIVED, never stored: `token = base64url(HMAC-SHA256(secret,
"order-access-token:" + order id))` (256 bits, 43 characters). Nothing in Redis
holds a token or anything a token can be computed from; checking one recomputes
it and compares in constant time. Two secrets may be accepted at once (current
and next, see `OrderTokens`), which is how the secret rotates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from shared.config import MIN_SECRET_CHARS

ORDER_ID = re.compile(r"^ord_[A-Za-z0-9_-]{22}$")
_ACCESS = b"order-access-token:"
_REQUEST = b"idempotent-request:"


def new_order_id() -> str:
    """128 random bits, URL-safe: ids cannot be guessed or enumerated."""
    return "ord_" + secrets.token_urlsafe(16)


def _mac(secret: bytes, purpose: bytes, data: str) -> bytes:
    return hmac.new(secret, purpose + data.encode("utf-8"), hashlib.sha256).digest()


class OrderTokens:
    """Issues access tokens with the current secret; accepts current or next.

    Rotation (README, "Access tokens"): add the new secret as next, then swap (new as
    current, old as next), then drop the old one once its tokens may lapse.
    """

    __slots__ = ("_accepted", "_current")

    def __init__(self, current: str, next_secret: str | None = None) -> None:
        secrets_ = [current] + ([next_secret] if next_secret else [])
        if any(len(s) < MIN_SECRET_CHARS for s in secrets_):
            raise ValueError(f"order token secrets must be at least {MIN_SECRET_CHARS} characters")
        self._current = current.encode("utf-8")
        self._accepted = tuple(s.encode("utf-8") for s in secrets_)

    def __repr__(self) -> str:
        return f"OrderTokens(<{len(self._accepted)} secrets>)"

    def issue(self, order_id: str) -> str:
        """The order's access token (the same every time for the same secret)."""
        return base64.urlsafe_b64encode(_mac(self._current, _ACCESS, order_id)).decode().rstrip("=")

    def verify(self, order_id: str, token: str | None) -> bool:
        """True when `token` is the order's token under an accepted secret (constant time)."""
        if not token or len(token) > 128 or not token.isascii():
            return False
        given = token.encode("ascii")
        matched = False
        for secret in self._accepted:
            expected = base64.urlsafe_b64encode(_mac(secret, _ACCESS, order_id)).rstrip(b"=")
            matched |= hmac.compare_digest(given, expected)
        return matched

    def request_digest(self, canonical: str) -> str:
        """A keyed digest of an idempotent request's body: stored instead of a plain hash so a
        Redis reader cannot confirm a guessed email address against it."""
        return _mac(self._current, _REQUEST, canonical).hex()

    def request_matches(self, canonical: str, digest: str) -> bool:
        matched = False
        for secret in self._accepted:
            matched |= hmac.compare_digest(_mac(secret, _REQUEST, canonical).hex(), digest)
        return matched


def legacy_token_matches(token: str | None, digest: str | None) -> bool:
    """Orders stored before tokens were derived kept `sha256(token)`; their links keep working."""
    if not token or not digest:
        return False
    return hmac.compare_digest(hashlib.sha256(token.encode("utf-8")).hexdigest(), digest)


def order_key(order_id: str) -> str:
    return f"order:{order_id}"


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order as stored in Redis (JSON) and shown to its owner.

    New records hold no token material. `legacy_token_sha256` is only read from
    records written before tokens were derived (their `token_sha256`), so those
    tokens keep working; it is never written for new orders and never shown.
    """

    id: str
    customer_email: str
    items: tuple[Item, ...]
    currency: str
    total_cents: int
    created_at: str
    legacy_token_sha256: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_email": self.customer_email,
            "items": [
                {"sku": i.sku, "quantity": i.quantity, "unit_price_cents": i.unit_price_cents}
                for i in self.items
            ],
            "currency": self.currency,
            "total_cents": self.total_cents,
            "created_at": self.created_at,
        }

    def to_json(self) -> str:
        data = self.public()
        if self.legacy_token_sha256 is not None:
            data["token_sha256"] = self.legacy_token_sha256
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> OrderRecord:
        data = json.loads(text)
        legacy = data.get("token_sha256")
        return cls(
            id=str(data["id"]),
            customer_email=str(data["customer_email"]),
            items=tuple(
                Item(str(i["sku"]), int(i["quantity"]), int(i["unit_price_cents"]))
                for i in data["items"]
            ),
            currency=str(data["currency"]),
            total_cents=int(data["total_cents"]),
            created_at=str(data["created_at"]),
            legacy_token_sha256=None if legacy is None else str(legacy),
        )
