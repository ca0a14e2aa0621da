"""Orders as stored data: ids, access tokens, keys and the JSON record (stdlib only)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

ORDER_ID = re.compile(r"^ord_[A-Za-z0-9_-]{22}$")


def new_order_id() -> str:
    """128 random bits, URL-safe: ids cannot be guessed or enumerated."""
    return "ord_" + secrets.token_urlsafe(16)


def new_access_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """Stored instead of the token, so a Redis dump does not grant access."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str | None, digest: str) -> bool:
    if not token:
        return False
    return hmac.compare_digest(token_digest(token), digest)


def order_key(order_id: str) -> str:
    return f"order:{order_id}"


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order as stored in Redis (JSON) and shown to its owner (without the digest)."""

    id: str
    customer_email: str
    items: tuple[Item, ...]
    currency: str
    total_cents: int
    created_at: str
    token_sha256: str

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
        data["token_sha256"] = self.token_sha256
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> OrderRecord:
        data = json.loads(text)
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
            token_sha256=str(data["token_sha256"]),
        )
