"""Workers allow 50 subrequests per invocation (Free plan): the whole `POST /api/orders`
invocation, background work included, counted at the transport on the devstack."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from devstack.dev import app_env
from shared.app.assembly import build_app
from shared.http import HttpxTransport
from shared.http.transport import HttpRequest, HttpResponse
from shared.web.asgi import AsgiAdapter
from tests.conftest import Devstack

pytestmark = pytest.mark.integration
APP_URL = "http://127.0.0.1:9"  # nothing listens: the jobs stay QStash's business
WORKERS_FREE_SUBREQUESTS = 50


class CountingTransport:
    """The real httpx transport, recording every outbound request (each is a subrequest)."""

    def __init__(self) -> None:
        self.inner = HttpxTransport()
        self.sent: list[str] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request.url)
        return await self.inner.send(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def order(email: str) -> dict[str, Any]:
    return {
        "customer_email": email,
        "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 100}],
    }


async def test_an_order_invocation_stays_within_the_workers_subrequest_limit(
    devstack: Devstack,
) -> None:
    """Each POST /api/orders invocation, with protection, the concurrency slot and the outbox
    flush it may start, makes at most the README's 5 + 2 (slot) + 10 (flush) subrequests, far
    under the 50 Workers Free allows."""
    env: Mapping[str, str] = {
        **app_env(devstack.raw, APP_URL),
        "RATE_LIMIT": "100000/10s",
        "DENY_COUNTRIES": "KP",
        "RATE_LIMIT_PROTECTION": "true",
        "ORDER_CONCURRENCY": "4",
    }
    transport = CountingTransport()
    adapter = AsgiAdapter(lambda: build_app(env, transport=transport))
    counts = []
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=adapter), base_url="http://testserver", timeout=60
        ) as client:
            for _ in range(5):
                before = len(transport.sent)
                email = f"subrequests-{uuid.uuid4().hex[:10]}@example.com"
                response = await client.post("/api/orders", json=order(email))
                assert response.status_code == 201, response.text
                counts.append(len(transport.sent) - before)
    finally:
        await transport.aclose()
    assert min(counts) >= 3, counts  # the count is real: Redis and QStash were called
    assert max(counts) <= 5 + 2 + 10 < WORKERS_FREE_SUBREQUESTS, (counts, transport.sent)
