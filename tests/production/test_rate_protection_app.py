"""The app's protection and order concurrency: DENY_COUNTRIES, the shared deny lists and
ORDER_CONCURRENCY, in process (ASGI adapter + httpx.ASGITransport) on the devstack."""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager

import pytest

from devstack.dev import app_env
from shared.errors import ConfigError
from shared.ratelimit import ConcurrencyLimit, Protection
from shared.ratelimit.concurrency import DEFAULT_CONCURRENCY_PREFIX
from shared.redis import Redis
from shared.settings import Settings
from tests.conftest import Devstack
from tests.support.identities import fresh_address
from tests.support.inprocess import AppClient, app_client

pytestmark = pytest.mark.integration
APP_URL = "http://127.0.0.1:9"  # nothing listens: no job is ever delivered from here


def client_for(
    devstack: Devstack, peer: str, **overrides: str
) -> AbstractAsyncContextManager[AppClient]:
    """The app in process on the devstack, called from the socket peer `peer`."""
    return app_client({**app_env(devstack.raw, APP_URL), **overrides}, client_ip=peer)


ORDER = {
    "customer_email": "buyer@example.com",
    "currency": "EUR",
    "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 1250}],
}


async def test_deny_countries_on_vercel_answer_403(devstack: Devstack) -> None:
    """DENY_COUNTRIES blocks the country Vercel states (x-vercel-ip-country) with a 403
    naming the list; other countries pass."""
    async with client_for(devstack, "127.0.0.1", VERCEL="1", DENY_COUNTRIES="xx, T1") as client:
        ip = fresh_address()
        denied = await client.get(
            "/api/health", headers={"x-vercel-forwarded-for": ip, "x-vercel-ip-country": "XX"}
        )
        tor = await client.get(
            "/api/health", headers={"x-vercel-forwarded-for": ip, "x-vercel-ip-country": "T1"}
        )
        allowed = await client.get(
            "/api/health", headers={"x-vercel-forwarded-for": ip, "x-vercel-ip-country": "FR"}
        )
    assert denied.status_code == 403
    assert denied.json() == {"error": "Request denied", "detail": "deny_country"}
    assert tor.status_code == 403
    assert allowed.status_code == 200


async def test_country_header_is_ignored_off_vercel(devstack: Devstack) -> None:
    """Without VERCEL=1 anyone could send x-vercel-ip-country: it is not trusted."""
    async with client_for(devstack, fresh_address(), DENY_COUNTRIES="XX") as client:
        answer = await client.get("/api/health", headers={"x-vercel-ip-country": "XX"})
    assert answer.status_code == 200


async def test_shared_deny_list_blocks_a_user_agent(devstack: Devstack) -> None:
    """With RATE_LIMIT_PROTECTION, a user agent in upstream's shared deny list gets 403."""
    redis = Redis(devstack.redis_rest_url, devstack.redis_rest_token)
    agent = f"EvilBot/{uuid.uuid4().hex}"
    protection = Protection(redis)
    await protection.deny(agent)
    try:
        async with client_for(devstack, fresh_address(), RATE_LIMIT_PROTECTION="true") as client:
            denied = await client.get("/api/health", headers={"user-agent": agent})
            allowed = await client.get("/api/health", headers={"user-agent": "curl/8"})
    finally:
        await protection.allow(agent)
        await redis.aclose()
    assert (denied.status_code, denied.json()["detail"]) == (403, "deny_user_agent")
    assert allowed.status_code == 200


async def test_order_concurrency_answers_429_with_retry_after(devstack: Devstack) -> None:
    """With ORDER_CONCURRENCY=2 and two orders in flight for a client, a third POST
    /api/orders answers 429 with Retry-After; once a slot frees it goes through, and its
    own slot is given back."""
    peer = fresh_address()
    redis = Redis(devstack.redis_rest_url, devstack.redis_rest_token)
    slots = ConcurrencyLimit(redis, 2, lease="30 s")
    identity = f"ip:{peer}"
    held = [await slots.acquire(identity) for _ in range(2)]  # two requests in flight
    assert all(lease.success for lease in held)
    try:
        async with client_for(devstack, peer, ORDER_CONCURRENCY="2") as client:
            refused = await client.post("/api/orders", json=ORDER)
            await slots.release(held[0])
            accepted = await client.post("/api/orders", json=ORDER)
    finally:
        for lease in held:
            await slots.release(lease)
        await redis.aclose()
    assert refused.status_code == 429
    assert refused.json() == {"error": "Too many concurrent requests"}
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    assert accepted.status_code == 201, accepted.text
    check = Redis(devstack.redis_rest_url, devstack.redis_rest_token)
    try:
        assert await check.zcard(f"{DEFAULT_CONCURRENCY_PREFIX}:{identity}") == 0
    finally:
        await check.aclose()


def test_protection_settings_are_validated(devstack: Devstack) -> None:
    """DENY_COUNTRIES takes two-letter codes; ORDER_CONCURRENCY an integer from 0."""
    base = app_env(devstack.raw, APP_URL)
    settings = Settings.from_env({**base, "DENY_COUNTRIES": "ru, kp"})
    assert settings.deny_countries == ("RU", "KP")
    assert settings.order_concurrency == 4 and settings.country_header is None
    assert Settings.from_env({**base, "VERCEL": "1"}).country_header == "x-vercel-ip-country"
    for name, value in (
        ("DENY_COUNTRIES", "Russia"),
        ("ORDER_CONCURRENCY", "-1"),
        ("IP_DENY_LIST_URL", "not a url"),
    ):
        with pytest.raises(ConfigError) as info:
            Settings.from_env({**base, name: value})
        assert info.value.variable == name
