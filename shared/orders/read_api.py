"""`GET` and `DELETE /api/orders/{id}` (standard library: these run in offline Pyodide too).

Reading goes through the cache-aside helper over the repository. A wrong or
missing access token answers 404, exactly like an unknown id, so ids cannot be
probed. The token is checked by recomputing it from the order id (`OrderTokens`);
neither the order record nor its cache entry holds anything a token can be made
from. The rate-limit decision and the cache read leave in one Redis request; the origin
is only asked once the request is known to be allowed (`rate_gate`).
"""

from __future__ import annotations

from typing import Any

from shared.cache import Cache
from shared.orders.records import (
    ORDER_ID,
    OrderRecord,
    OrderTokens,
    legacy_token_matches,
    order_key,
)
from shared.orders.repository import OrderRepository
from shared.routes import ORDER
from shared.web.errors import HttpError
from shared.web.http import Request, Response
from shared.web.ratelimiting import rate_gate
from shared.web.router import Router

NOT_FOUND = "Order not found"


def access_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.query_param("token")


def order_routes_read(repository: OrderRepository, cache: Cache, tokens: OrderTokens) -> Router:
    router = Router()

    def allowed(request: Request, order_id: str, legacy_digest: object) -> bool:
        token = access_token(request)
        if tokens.verify(order_id, token):
            return True
        return isinstance(legacy_digest, str) and legacy_token_matches(token, legacy_digest)

    async def load(order_id: str) -> dict[str, Any] | None:
        await rate_gate()  # a denied request never reaches the origin
        record = await repository.get(order_id)
        return None if record is None else _stored(record)

    @router.route("GET", ORDER)
    async def get_order(request: Request) -> Response:
        order_id = request.path_params["id"]
        if not ORDER_ID.match(order_id):
            raise HttpError(404, NOT_FOUND)
        result = await cache.get_or_load_result(order_key(order_id), lambda: load(order_id))
        data = result.value
        if data is None or not allowed(request, order_id, data.get(_LEGACY)):
            raise HttpError(404, NOT_FOUND, headers={"x-cache": result.status})
        public = {k: v for k, v in data.items() if k != _LEGACY}
        return Response.json(
            public, headers={"x-cache": result.status, "cache-control": "no-store"}
        )

    @router.route("DELETE", ORDER)
    async def delete_order(request: Request) -> Response:
        order_id = request.path_params["id"]
        await rate_gate()
        record = await repository.get(order_id) if ORDER_ID.match(order_id) else None
        if record is None or not allowed(request, order_id, record.legacy_token_sha256):
            raise HttpError(404, NOT_FOUND)
        await repository.delete(order_id)
        await cache.invalidate(order_key(order_id))
        return Response(204)

    return router


_LEGACY = "token_sha256"  # only in the cache entry of an order stored by an older release


def _stored(record: OrderRecord) -> dict[str, Any]:
    data = record.public()
    if record.legacy_token_sha256 is not None:
        data[_LEGACY] = record.legacy_token_sha256
    return data
