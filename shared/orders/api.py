"""`POST /api/orders` and `GET /api/openapi.json`, whose handlers need pydantic.

The routes are mounted when the app is built, but their handlers (and pydantic, and the
order models) are imported on the first request to one of them: starting the app, and
every other route, never pays for pydantic. Where pydantic cannot be imported (offline
Pyodide), both routes answer a clear 503 and everything else works.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from shared.orders.service import OrderService
from shared.routes import OPENAPI, ORDERS
from shared.web.errors import HttpError
from shared.web.http import Request, Response
from shared.web.router import Handler, Router

log = logging.getLogger(__name__)
UNAVAILABLE = "Order creation is unavailable: pydantic could not be imported"


def _anyone(request: Request) -> str | None:
    return None


def order_routes_create(
    service: OrderService,
    app_url: str,
    *,
    caller: Callable[[Request], str | None] = _anyone,
) -> Router:
    """`caller` names who is asking (the API key's identity, `ApiKeys.identity_of`): it
    scopes `Idempotency-Key`s. None (no `API_KEYS`) leaves one global scope."""
    router = Router()
    loaded: list[tuple[Handler, Handler] | None] = []  # filled by the first request

    def handlers() -> tuple[Handler, Handler]:
        if not loaded:
            try:
                from shared.orders.create_handlers import build_handlers
            except ImportError as exc:  # logged once; later requests answer 503 at once
                log.error("order creation disabled: %s", exc)
                loaded.append(None)
            else:
                loaded.append(build_handlers(service, app_url, caller))
        if loaded[0] is None:
            raise HttpError(503, UNAVAILABLE)
        return loaded[0]

    @router.route("POST", ORDERS)
    async def create_order(request: Request) -> Response:
        return await handlers()[0](request)

    @router.route("GET", OPENAPI)
    async def openapi_json(request: Request) -> Response:
        return await handlers()[1](request)

    return router
