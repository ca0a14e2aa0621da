"""A served request leaves nothing for the cyclic garbage collector.

Objects freed by reference counting cost nothing later; objects caught in a cycle wait for
a collection that walks the heap (in Pyodide, where Workers bill CPU, the heap holds the
whole runtime). The rate limiter's decision task once closed one per request: scope ->
gate -> task -> the task's context -> scope.

A request's state hangs off its `RequestScope`, so one of the test's scopes found in the
collector's garbage means that request's state was caught in a cycle. (Only the test's own
scopes are counted, by identity: other tests' leftovers may be collected meanwhile.)
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator

import pytest

from devstack.dev import DEV_ORDER_TOKEN_SECRET
from shared.app.assembly import build_app
from shared.background import background
from shared.http.httpx_transport import HttpxTransport
from shared.orders.records import Item, OrderRecord, OrderTokens, new_order_id, order_key
from shared.redis import Redis
from shared.scope import RequestScope, request_scope
from shared.web.http import Headers, Request
from tests.conftest import Devstack
from tests.support.inprocess import app_test_env

pytestmark = pytest.mark.integration

REQUESTS = 40


def _collect_for_real() -> None:
    """Frees every cycle now (saved ones too: cleared, they are garbage again)."""
    gc.set_debug(0)
    gc.garbage.clear()
    gc.collect()


@pytest.fixture
def garbage() -> Iterator[list[object]]:
    """`gc.garbage`; the test turns saving on with `gc.set_debug(gc.DEBUG_SAVEALL)`."""
    try:
        yield gc.garbage
    finally:
        _collect_for_real()


@pytest.mark.parametrize("route", ["cached order read", "health"])
async def test_requests_leave_no_reference_cycles(
    devstack: Devstack, garbage: list[object], route: str
) -> None:
    """Served requests (rate limit, cache-aside read or ping, JSON answer) form no cycles."""
    transport = HttpxTransport()
    bundle = build_app(app_test_env(devstack), transport=transport)
    order_id = new_order_id()
    record = OrderRecord(
        order_id, "cycles@example.com", (Item("SKU-1", 1, 100),), "EUR", 100, "2026-01-01"
    )
    redis = Redis(devstack.redis_rest_url, devstack.redis_rest_token)
    await redis.set(order_key(order_id), record.to_json(), ex=600)
    await redis.aclose()
    token = OrderTokens(DEV_ORDER_TOKEN_SECRET).issue(order_id)
    path, headers = (
        (f"/api/orders/{order_id}", [("authorization", f"Bearer {token}")])
        if route == "cached order read"
        else ("/api/health", [])
    )

    mine: set[int] = set()

    async def serve() -> int:
        async with request_scope("test") as scope:
            mine.add(id(scope))
            work = background()
            request = Request("GET", path, headers=Headers(headers), client_ip="192.0.2.44")
            response = await bundle.app.handle(request)
            if work.pending():
                await work.drain()
            return response.status

    try:
        statuses = [await serve() for _ in range(3)]  # the first ones load scripts, caches
        _collect_for_real()
        gc.set_debug(gc.DEBUG_SAVEALL)
        statuses += [await serve() for _ in range(REQUESTS)]
        gc.collect()
        scopes = [item for item in garbage if isinstance(item, RequestScope) and id(item) in mine]
        kinds = Counter(type(item).__qualname__ for item in garbage)
    finally:
        await transport.aclose()
    assert statuses == [200] * (REQUESTS + 3)
    assert not scopes, f"{len(scopes)} request scopes in cycles after {REQUESTS}: {kinds}"
