"""Error reports during an upstream outage: the real app in process on the devstack, a fault
proxy before its Redis REST server, the report throttle on an injected clock.

While Redis is down every request answers 503; the reporter must get one report per error
type and status a minute (the next one carrying the count), whatever the paths, while a
bug (an unexpected exception, 500) is still reported every time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest

from shared.app.assembly import build_app
from shared.http.httpx_transport import HttpxTransport
from shared.http.transport import HttpRequest, HttpResponse, Transport
from shared.web.reporting import ErrorReport, ReportThrottle
from tests.conftest import Devstack
from tests.faults.proxy import FaultProxy
from tests.support.identities import unique_email
from tests.support.inprocess import AppClient, app_client, app_test_env

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(120)]

UNAVAILABLE = "Upstream service unavailable"
OUTAGE_REQUESTS = 30


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class BuggyTransport:
    """The real httpx transport, or, while `broken`, a bug: a `RuntimeError` (not a
    `TransportError`) on every send, which the app must answer 500."""

    def __init__(self) -> None:
        self.inner = HttpxTransport()
        self.broken = False

    async def send(self, request: HttpRequest) -> HttpResponse:
        if self.broken:
            raise RuntimeError("a bug in the transport")
        return await self.inner.send(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def redis_proxy(devstack: Devstack) -> Iterator[FaultProxy]:
    """A fault proxy before the devstack's Redis REST server, passing requests through."""
    target = urlsplit(devstack.redis_rest_url)
    assert target.hostname is not None and target.port is not None
    with FaultProxy((target.hostname, target.port)) as proxy:
        yield proxy


@asynccontextmanager
async def reporting_app(
    devstack: Devstack, proxy: FaultProxy, reports: list[ErrorReport], clock: Clock
) -> AsyncIterator[tuple[AppClient, BuggyTransport]]:
    """The app (Redis through `proxy`) reporting to `reports`, its throttle on `clock`."""
    env = app_test_env(devstack, UPSTASH_REDIS_REST_URL=proxy.url)
    transport = BuggyTransport()

    def build(outbound: Transport) -> Any:
        throttle = ReportThrottle(60.0, clock=clock)
        return build_app(
            env, transport=outbound, error_reporter=reports.append, report_throttle=throttle
        )

    async with app_client(env, transport=transport, build=build) as client:
        yield client, transport


async def outage_request(client: AppClient, i: int) -> None:
    """One request that needs Redis (order creation, reading order `i`, or the health check):
    a JSON 503."""
    if i % 3 == 2:
        response = await client.get("/api/health")
        assert response.status_code == 503, response.text
        assert response.json()["status"] == "degraded"
        return
    if i % 3:
        response = await client.get(f"/api/orders/ord_{i:022d}")
    else:
        order = {
            "customer_email": unique_email("outage"),
            "currency": "EUR",
            "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 100}],
        }
        response = await client.post("/api/orders", json=order)
    assert response.status_code == 503, response.text
    assert response.json()["error"] == UNAVAILABLE


@pytest.mark.parametrize(
    ("fault", "error_type"), [("refuse", "TransportError"), ("http500", "RedisResponseError")]
)
async def test_a_redis_outage_is_reported_once_a_minute_with_the_count(
    devstack: Devstack, redis_proxy: FaultProxy, fault: Any, error_type: str
) -> None:
    """30 requests on many paths (the health check's 503 included) during a Redis outage give
    one report; the first one a minute later carries the count of the 30 in between; after
    recovery the app answers again."""
    reports: list[ErrorReport] = []
    clock = Clock()
    async with reporting_app(devstack, redis_proxy, reports, clock) as (client, _):
        redis_proxy.set_mode(fault)
        for i in range(OUTAGE_REQUESTS):
            await outage_request(client, i)
        assert [(r.status, r.error_type, r.suppressed) for r in reports] == [(503, error_type, 0)]
        assert reports[0].message == UNAVAILABLE
        clock.now += 59.0
        await outage_request(client, 2)
        assert len(reports) == 1
        clock.now += 1.0
        await outage_request(client, 3)
        assert [(r.status, r.error_type, r.suppressed) for r in reports] == [
            (503, error_type, 0),
            (503, error_type, OUTAGE_REQUESTS),
        ]
        assert (
            reports[1].message == f"{UNAVAILABLE} (+{OUTAGE_REQUESTS} more since the last report)"
        )
        redis_proxy.set_mode("pass")
        assert (await client.get("/api/health")).status_code == 200
    if fault != "refuse":  # refused connects never reach the proxy
        assert redis_proxy.seen[fault] >= OUTAGE_REQUESTS


async def test_a_bug_is_reported_every_time_during_an_outage(
    devstack: Devstack, redis_proxy: FaultProxy
) -> None:
    """During a Redis outage the 503s give one report, while each 500 of a bug (an unexpected
    exception) is reported on its own, with its own request id."""
    reports: list[ErrorReport] = []
    async with reporting_app(devstack, redis_proxy, reports, Clock()) as (client, transport):
        redis_proxy.set_mode("refuse")
        bug_ids: list[str] = []
        for i in range(10):
            await outage_request(client, i)
            transport.broken = True
            response = await client.get(f"/api/orders/ord_{i:022d}")
            transport.broken = False
            assert response.status_code == 500, response.text
            assert response.json()["error"] == "Internal server error"
            bug_ids.append(response.headers["x-request-id"])
    outages = [r for r in reports if r.status == 503]
    bugs = [r for r in reports if r.status == 500]
    assert [(r.error_type, r.suppressed) for r in outages] == [("TransportError", 0)]
    assert [r.request_id for r in bugs] == bug_ids
    assert {(r.error_type, r.message, r.suppressed) for r in bugs} == {
        ("RuntimeError", "Internal server error", 0)
    }
