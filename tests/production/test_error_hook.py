"""The error-reporting hook, in process (ASGI adapter + httpx.ASGITransport) on the devstack."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager

import pytest

from devstack.dev import app_env
from shared.web.reporting import ErrorReport
from tests.conftest import Devstack
from tests.support.deliveries import signed_headers
from tests.support.inprocess import BASE_URL, AppClient, app_client

pytestmark = pytest.mark.integration
ORDER = {
    "customer_email": "hook@example.com",
    "currency": "EUR",
    "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 100}],
}


def client_for(
    env: Mapping[str, str], reports: list[ErrorReport] | None
) -> AbstractAsyncContextManager[AppClient]:
    """The app in process; its error reports go to `reports` (None: the default reporter)."""
    return app_client(env, error_reporter=None if reports is None else reports.append)


async def test_reporter_gets_the_request_id_of_a_503(devstack: Devstack) -> None:
    """With Redis unreachable, order creation is a 503 and the reporter gets its request id."""
    env = {**app_env(devstack.raw, BASE_URL), "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:9"}
    reports: list[ErrorReport] = []
    async with client_for(env, reports) as client:
        response = await client.post("/api/orders", json=ORDER)
        missing = await client.get("/api/nothing-here")
    assert response.status_code == 503
    assert missing.status_code == 404
    assert len(reports) == 1  # the 404 is not reported
    report = reports[0]
    assert report.request_id == response.headers["x-request-id"]
    assert (report.status, report.path) == (503, "/api/orders")
    assert report.error_type == "TransportError"
    assert report.message == "Upstream service unavailable"


async def test_reporter_gets_every_job_failure(devstack: Devstack) -> None:
    """Job answers 489 (non-retryable) and 401 (bad signature) are reported with request ids."""
    reports: list[ErrorReport] = []
    path = "/api/jobs/send-confirmation"
    body = b'{"orderId": "ord_AAAAAAAAAAAAAAAAAAAAAA", "requestId": "origin-request"}'
    async with client_for(app_env(devstack.raw, BASE_URL), reports) as client:
        gone = await client.post(path, content=body, headers=signed_headers(devstack, path, body))
        forged = await client.post(path, content=body, headers={"upstash-signature": "x.y.z"})
    assert (gone.status_code, forged.status_code) == (489, 401)
    assert [(r.status, r.path) for r in reports] == [(489, path), (401, path)]
    assert reports[0].request_id == gone.headers["x-request-id"]
    assert reports[0].message == "Order no longer exists"
    assert reports[1].request_id == forged.headers["x-request-id"]


async def test_caller_request_id_is_reported(devstack: Devstack) -> None:
    """A sane X-Request-ID from the caller is the id in the answer and in the report."""
    env = {**app_env(devstack.raw, BASE_URL), "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:9"}
    reports: list[ErrorReport] = []
    async with client_for(env, reports) as client:
        response = await client.get("/api/health", headers={"x-request-id": "trace-12345678"})
    assert response.status_code == 503
    assert response.headers["x-request-id"] == "trace-12345678"
    assert [r.request_id for r in reports] == ["trace-12345678"]


async def test_default_reporter_logs_at_error(
    devstack: Devstack, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a reporter, each report is one ERROR log line with the request id, no body."""
    env = {**app_env(devstack.raw, BASE_URL), "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:9"}
    with caplog.at_level(logging.ERROR, logger="app.errors"):
        async with client_for(env, None) as client:
            response = await client.post("/api/orders", json=ORDER)
    lines = [r.getMessage() for r in caplog.records if r.name == "app.errors"]
    assert len(lines) == 1 and response.headers["x-request-id"] in lines[0]
    assert "hook@example.com" not in lines[0] and '"status":503' in lines[0]


async def test_a_broken_reporter_does_not_break_the_answer(devstack: Devstack) -> None:
    """A reporter that raises is logged; the client still gets the mapped JSON answer."""

    def broken(report: ErrorReport) -> None:
        raise RuntimeError("reporter down")

    env = {**app_env(devstack.raw, BASE_URL), "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:9"}
    async with app_client(env, error_reporter=broken) as client:
        response = await client.get("/api/health")
    assert response.status_code == 503 and response.json()["status"] == "degraded"


async def test_an_unconfigured_cron_secret_is_reported_throttled(devstack: Devstack) -> None:
    """Without CRON_SECRET the cron and dead-letter routes answer 503 to anyone; 150 anonymous
    calls (many distinct paths) reach the reporter at most once per route a minute, with the
    count, so nobody can burn its quota."""
    env = {**app_env(devstack.raw, BASE_URL), "RATE_LIMIT": "100000/10s"}
    env.pop("CRON_SECRET")
    reports: list[ErrorReport] = []
    async with client_for(env, reports) as client:
        for i in range(50):
            cron = await client.get("/api/cron/flush-outbox")
            listed = await client.get("/api/admin/outbox/dead")
            dropped = await client.delete(f"/api/admin/outbox/dead/job-{i}")
            for response in (cron, listed, dropped):
                assert response.status_code == 503
                assert response.json() == {"error": "CRON_SECRET is not configured"}
    assert 1 <= len(reports) <= 3, [r.path for r in reports]
    assert {r.status for r in reports} == {503}
    assert all(r.message.startswith("CRON_SECRET is not configured") for r in reports)
