"""A refusal by the order concurrency cap keeps its own rate-limit headers: the outer rate
limit adds its policy to the structured fields (IETF draft-09 lists several policies) instead
of overwriting the cap's answer with a quota the request did not run out of."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import pytest

from devstack.dev import app_env
from shared.ratelimit import ConcurrencyLimit
from shared.redis import Redis
from tests.conftest import Devstack
from tests.support.identities import fresh_address
from tests.support.inprocess import AppClient, app_client

pytestmark = pytest.mark.integration
APP_URL = "http://127.0.0.1:9"
ORDER = {
    "customer_email": "buyer@example.com",
    "currency": "EUR",
    "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 1250}],
}


def client_for(
    devstack: Devstack, peer: str, **overrides: str
) -> AbstractAsyncContextManager[AppClient]:
    """The app in process on the devstack, called from the socket peer `peer`."""
    return app_client({**app_env(devstack.raw, APP_URL), **overrides}, client_ip=peer)


async def test_concurrency_refusal_headers_describe_the_cap(devstack: Devstack) -> None:
    """429 "Too many concurrent requests": X-RateLimit-* and Retry-After are the cap's
    (limit 2, remaining 0); RateLimit-Policy and RateLimit list the cap and the rate limit;
    an admitted order still carries the rate limit's headers alone."""
    peer = fresh_address()
    redis = Redis(devstack.redis_rest_url, devstack.redis_rest_token)
    slots = ConcurrencyLimit(redis, 2, lease="30 s")
    held = [await slots.acquire(f"ip:{peer}") for _ in range(2)]
    try:
        async with client_for(devstack, peer, ORDER_CONCURRENCY="2", RATE_LIMIT="50/10s") as c:
            refused = await c.post("/api/orders", json=ORDER)
            for lease in held:
                await slots.release(lease)
            accepted = await c.post("/api/orders", json=ORDER)
    finally:
        for lease in held:
            await slots.release(lease)
        await redis.aclose()
    assert refused.status_code == 429, refused.text
    h = refused.headers
    assert (h["x-ratelimit-limit"], h["x-ratelimit-remaining"]) == ("2", "0"), dict(h)
    assert 1 <= int(h["retry-after"]) <= 30
    policies = [p.strip() for p in h["ratelimit-policy"].split(",")]
    assert policies == ['"default";q=50;w=10', '"concurrency";q=2;w=30'], policies
    fields = [f.strip() for f in h["ratelimit"].split(",")]
    assert fields[0].startswith('"default";r=') and fields[1].startswith('"concurrency";r=0;')
    assert accepted.status_code == 201, accepted.text
    assert accepted.headers["ratelimit-policy"] == '"default";q=50;w=10'
    assert accepted.headers["x-ratelimit-limit"] == "50"
