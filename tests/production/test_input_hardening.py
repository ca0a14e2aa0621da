"""Hostile input against the real app (ASGI adapter in process) on the devstack: deep JSON,
forged nested signatures, non-JSON bodies, oversized headers, forged-delivery floods."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from shared.redis import Redis
from shared.web.reporting import ErrorReport
from tests.conftest import Devstack
from tests.support.deliveries import signature
from tests.support.inprocess import AppClient, app_client, app_test_env

pytestmark = pytest.mark.integration
BASE_URL = "http://testserver"
JOB = "/api/jobs/send-confirmation"
SMOKE = "/api/jobs/smoke"
JSON = {"content-type": "application/json"}


def order(email: str) -> dict[str, Any]:
    return {
        "customer_email": email,
        "currency": "EUR",
        "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 100}],
    }


@pytest.fixture
def env(devstack: Devstack) -> dict[str, str]:
    return app_test_env(devstack)


@pytest.fixture
def caplog_all(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


def client_for(
    env: Mapping[str, str], reports: list[ErrorReport]
) -> AbstractAsyncContextManager[AppClient]:
    """The app in process, its error reports collected in `reports` (none logged)."""
    return app_client(env, error_reporter=reports.append)


def assert_clean_log(caplog: pytest.LogCaptureFixture) -> None:
    text = caplog.text
    assert "Traceback" not in text and "RecursionError" not in text, text[-2000:]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def stored_orders(env: Mapping[str, str], email: str) -> int:
    """How many stored orders mention `email` (every `order:*` value read)."""
    redis = Redis(env["UPSTASH_REDIS_REST_URL"], env["UPSTASH_REDIS_REST_TOKEN"])
    try:
        count = 0
        async for key in redis.scan_iter(match="order:*", count=500):
            value = await redis.get(key)
            count += email in str(value)
        return count
    finally:
        await redis.aclose()


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 10_000,
        b"[" * 5_000 + b"]" * 5_000,
        b'{"customer_email": "a@example.com", "items": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    ],
    ids=["open", "closed", "inside-an-order"],
)
async def test_deeply_nested_json_is_a_400_without_traceback(
    env: dict[str, str], caplog_all: pytest.LogCaptureFixture, body: bytes
) -> None:
    """A ~10 KB deeply nested JSON body answers 400 JSON; nothing is logged as an error."""
    reports: list[ErrorReport] = []
    async with client_for(env, reports) as client:
        response = await client.post("/api/orders", content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "JSON body is nested too deeply"
    assert reports == []
    assert_clean_log(caplog_all)


@pytest.mark.parametrize("path", [JOB, SMOKE])
async def test_forged_nested_signature_is_a_401_without_traceback(
    env: dict[str, str], caplog_all: pytest.LogCaptureFixture, path: str
) -> None:
    """An unauthenticated Upstash-Signature whose JWT header or payload is deeply nested
    answers 401 JSON, with no traceback in the log."""
    nested = b64url(b"[" * 2000)
    tokens = [f"{nested}.e30.AAAA", f"{b64url(b'{}')}.{nested}.AAAA", "x" * 20_000]
    async with client_for(env, []) as client:
        for token in tokens:
            response = await client.post(
                path, content=b"{}", headers={"upstash-signature": token, **JSON}
            )
            assert response.status_code == 401, response.text
            assert response.json()["error"] == "Invalid signature"
    assert_clean_log(caplog_all)


@pytest.mark.parametrize(
    ("kind", "headers", "extra"),
    [
        ("text/plain", {"content-type": "text/plain"}, {}),
        ("text/plain;charset=UTF-8", {"content-type": "text/plain;charset=UTF-8"}, {}),
        ("form", {"content-type": "application/x-www-form-urlencoded"}, {}),
        ("xml", {"content-type": "text/xml"}, {}),
        ("none", {}, {}),
        ("multipart", {}, {"files": {"f": ("order.json", b"{}", "application/json")}}),
    ],
)
async def test_non_json_bodies_are_415_and_store_nothing(
    env: dict[str, str], kind: str, headers: dict[str, str], extra: dict[str, Any]
) -> None:
    """Cross-site "simple request" bodies (text/plain, form, multipart, XML) answer 415 (with
    the rate-limit headers) and store no order, even when the body itself is a valid order."""
    email = f"xsite-{uuid.uuid4().hex[:12]}@example.com"
    payload = httpx.Request("POST", "/", json=order(email)).content
    async with client_for(env, []) as client:
        if extra:
            response = await client.post("/api/orders", data={"order": payload.decode()}, **extra)
        else:
            response = await client.post("/api/orders", content=payload, headers=headers)
    assert response.status_code == 415, response.text
    assert response.json() == {"error": "Content-Type must be application/json"}
    assert "x-ratelimit-limit" in response.headers  # like every other /api/* answer
    assert await stored_orders(env, email) == 0


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
async def test_json_bodies_still_create_orders(env: dict[str, str], content_type: str) -> None:
    """application/json with any case or a charset parameter still creates the order."""
    email = f"json-{uuid.uuid4().hex[:12]}@example.com"
    payload = httpx.Request("POST", "/", json=order(email)).content
    async with client_for(env, []) as client:
        response = await client.post(
            "/api/orders", content=payload, headers={"content-type": content_type}
        )
    assert response.status_code == 201, response.text
    assert await stored_orders(env, email) == 1


async def test_signed_job_deliveries_are_exempt_from_the_json_rule(
    env: dict[str, str], devstack: Devstack
) -> None:
    """A signed job delivery reaches its handler whatever its Content-Type (the publisher
    chooses it): an unknown order answers 489, not 415."""
    body = b'{"orderId": "ord_AAAAAAAAAAAAAAAAAAAAAA"}'
    token = signature(devstack, JOB, body)
    async with client_for(env, []) as client:
        for content_type in ("text/plain", "application/json"):
            response = await client.post(
                JOB,
                content=body,
                headers={"upstash-signature": token, "content-type": content_type},
            )
            assert response.status_code == 489, response.text


async def test_oversized_headers_are_431(env: dict[str, str]) -> None:
    """Too many header fields or too many header bytes answer 431 JSON."""
    async with client_for(env, []) as client:
        many = await client.get("/api/health", headers={f"x-h{i}": "1" for i in range(150)})
        big = await client.get("/api/health", headers={"x-big": "a" * 40_000})
        fine = await client.get("/api/health", headers={f"x-h{i}": "1" for i in range(20)})
    for response in (many, big):
        assert response.status_code == 431
        assert response.json()["error"] == "Request headers too large"
    assert fine.status_code == 200


async def test_forged_delivery_flood_is_reported_once(env: dict[str, str]) -> None:
    """100 forged deliveries answer 401 each but reach the error reporter at most twice
    (throttled per path and status per minute), so nobody can burn its quota."""
    reports: list[ErrorReport] = []
    async with client_for(env, reports) as client:
        for i in range(100):
            response = await client.post(
                JOB, content=b"{}", headers={"upstash-signature": f"x.y.{i}", **JSON}
            )
            assert response.status_code == 401
    assert 1 <= len(reports) <= 2
    assert {(r.status, r.path) for r in reports} == {(401, JOB)}
