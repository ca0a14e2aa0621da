"""Request and response models (pydantic): validation and the OpenAPI document.

Validation is strict: a JSON `true`, `"2"`, `2.0` or `1e3` is not an integer, and
only a JSON string is a string. `customer_email` follows the one address rule in
`shared.jobs.email_address`, the same function the email builder applies, so an
order the API accepts can always be emailed; the OpenAPI schema states that rule
as a pattern and a maximum length.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from shared.jobs.email_address import (
    EMAIL_PATTERN,
    LOCAL_LENGTH_PATTERN,
    MAX_EMAIL_LENGTH,
    check_email,
)


def _customer_email(value: str) -> str:
    return check_email(value, "customer_email")


Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Email = Annotated[
    str,
    AfterValidator(_customer_email),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": MAX_EMAIL_LENGTH,
            "pattern": EMAIL_PATTERN,
            "allOf": [{"pattern": LOCAL_LENGTH_PATTERN}],
            "description": (
                "An ASCII address: a dot-atom local part of at most 64 characters, a domain "
                "of letters, digits and inner hyphens (internationalized domains in xn-- "
                "form); no whitespace, quotes, angle brackets or control characters."
            ),
        }
    ),
]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
"""What `POST /api/orders` accepts as `Idempotency-Key`: 1-255 visible ASCII characters."""
STRICT = ConfigDict(extra="forbid", strict=True)


class ItemIn(BaseModel):
    model_config = STRICT

    sku: Sku
    quantity: int = Field(ge=1, le=1000)
    unit_price_cents: int = Field(ge=0, le=10_000_000, description="price of one unit, in cents")


class OrderIn(BaseModel):
    """`POST /api/orders` body."""

    model_config = STRICT

    customer_email: Email
    items: list[ItemIn] = Field(min_length=1, max_length=50)
    currency: Currency = "EUR"


class ItemOut(ItemIn):
    pass


class OrderOut(BaseModel):
    id: str
    customer_email: str
    items: list[ItemOut]
    currency: str
    total_cents: int
    created_at: str


class OrderCreated(BaseModel):
    order: OrderOut
    access_token: str = Field(description="present it to read the order (Bearer or ?token=)")
    status: str = "created"


class ErrorOut(BaseModel):
    error: str
    detail: Any | None = None
