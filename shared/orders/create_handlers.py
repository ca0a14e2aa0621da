"""The handlers of `POST /api/orders` and `GET /api/openapi.json` (pydantic validation and
schema). Imported by `shared.orders.api` on the first request to either route, so that
starting the app never imports pydantic."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

from pydantic import ValidationError

from shared.orders.models import IDEMPOTENCY_KEY_PATTERN, OrderIn
from shared.orders.openapi import openapi_document
from shared.orders.records import Item
from shared.orders.service import IdempotencyConflict, NewOrder, OrderGone, OrderService
from shared.web.errors import HttpError
from shared.web.http import Request, Response
from shared.web.ratelimiting import rate_gate
from shared.web.router import Handler

_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def _field_errors(exc: ValidationError) -> list[dict[str, object]]:
    # Field path and message only: never echo the submitted value (it may be an email).
    return [
        {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def build_handlers(
    service: OrderService, app_url: str, caller: Callable[[Request], str | None]
) -> tuple[Handler, Handler]:
    """The create-order and OpenAPI handlers (see `shared.orders.api.order_routes_create`)."""
    openapi = json.dumps(openapi_document(app_url)).encode()

    async def create_order(request: Request) -> Response:
        key = request.headers.get("idempotency-key")
        if key is not None and not _IDEMPOTENCY_KEY.match(key):
            raise HttpError(400, "Idempotency-Key must be 1-255 visible ASCII characters")
        data = request.json()
        try:
            order = OrderIn.model_validate(data)
        except ValidationError as exc:
            raise HttpError(422, "Validation failed", _field_errors(exc)) from None
        await rate_gate()
        new = NewOrder(
            customer_email=order.customer_email,
            items=tuple(Item(i.sku, i.quantity, i.unit_price_cents) for i in order.items),
            currency=order.currency,
        )
        canonical = json.dumps(order.model_dump(mode="json"), sort_keys=True).encode()
        try:
            outcome = await service.create(
                new,
                request_hash=hashlib.sha256(canonical).hexdigest(),
                key=key,
                request_id=request.request_id,
                scope=None if key is None else caller(request),
            )
        except IdempotencyConflict as exc:
            if exc.in_flight:
                raise HttpError(
                    409,
                    "A request with this Idempotency-Key is still in progress",
                    headers={"retry-after": "1"},
                ) from None
            raise HttpError(422, "Idempotency-Key was already used with a different body") from None
        except OrderGone:
            raise HttpError(
                410, "The order created with this Idempotency-Key was deleted"
            ) from None
        headers = {"idempotent-replayed": "true"} if outcome.replayed else {}
        return Response.json(outcome.body, outcome.status, headers)

    async def openapi_json(request: Request) -> Response:
        return Response(200, openapi, {"content-type": "application/json"})

    return create_order, openapi_json
