"""Workers allow 50 subrequests per invocation (Free plan): the whole `POST /api/orders`
invocation, background work included, counted at the transport on the devstack."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Devstack
from tests.support.identities import unique_email
from tests.support.inprocess import app_client, app_test_env
from tests.support.transports import CountingTransport

pytestmark = pytest.mark.integration
APP_URL = "http://127.0.0.1:9"  # nothing listens: the jobs stay QStash's business
WORKERS_FREE_SUBREQUESTS = 50


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
    env = app_test_env(
        devstack, APP_URL, DENY_COUNTRIES="KP", RATE_LIMIT_PROTECTION="true", ORDER_CONCURRENCY="4"
    )
    transport = CountingTransport()  # each outbound request is a subrequest
    counts = []
    async with app_client(env, transport=transport) as client:
        for _ in range(5):
            before = len(transport.sent)
            response = await client.post("/api/orders", json=order(unique_email("subrequests")))
            assert response.status_code == 201, response.text
            counts.append(len(transport.sent) - before)
    assert min(counts) >= 3, counts  # the count is real: Redis and QStash were called
    assert max(counts) <= 5 + 2 + 10 < WORKERS_FREE_SUBREQUESTS, (counts, transport.sent)
