"""The order API's harder promises, through the real launcher on the devstack: a denied
read never reaches the origin, the job's failure modes, and the per-recipient email limit."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis as redis_py

from shared.qstash.signing import delivery_claims, sign_jwt
from tests.conftest import Devstack
from tests.launcher.app_client import Api, running_api
from tests.support.identities import fresh_address

pytestmark = [pytest.mark.launcher, pytest.mark.integration]
JOB = "/api/jobs/send-confirmation"


@pytest.fixture(scope="module")
def api(devstack: Devstack) -> Iterator[Api]:
    """An instance that cannot reach QStash: the tests deliver the jobs themselves."""
    with running_api(devstack, QSTASH_URL="http://127.0.0.1:9", EMAIL_RATE_LIMIT="2/1h") as api:
        yield api


def deliver(api: Api, body: bytes) -> httpx.Response:
    """One signed delivery of `body` to the job endpoint, as QStash makes it."""
    url = api.env["APP_URL"] + JOB
    claims = delivery_claims(url, body, now=time.time(), jwt_id=uuid.uuid4().hex)
    signature = sign_jwt(claims, api.env["QSTASH_CURRENT_SIGNING_KEY"])
    return api.request("POST", JOB, content=body, headers={"Upstash-Signature": signature})


def new_order(api: Api, email: str) -> str:
    created = api.create_order(email)
    assert created.status_code == 201, created.text
    order_id: str = created.json()["order"]["id"]
    return order_id


def job_body(order_id: str) -> bytes:
    return f'{{"orderId": "{order_id}", "requestId": "test"}}'.encode()


def test_denied_read_never_calls_the_loader(api: Api, devstack: Devstack) -> None:
    """Over the limit, GET /api/orders/{id} answers 429 and the origin is never read
    (no cache entry is written for the order)."""
    created = api.create_order(f"d-{uuid.uuid4().hex[:8]}@example.com").json()
    oid, token = created["order"]["id"], created["access_token"]
    ip = fresh_address()
    statuses = [api.request("GET", "/api/health", ip=ip).status_code for _ in range(7)]
    assert statuses[-1] == 429, statuses
    denied = api.request(
        "GET", f"/api/orders/{oid}", ip=ip, headers={"Authorization": f"Bearer {token}"}
    )
    assert denied.status_code == 429
    assert denied.json() == {"error": "Too many requests"}
    direct = redis_py.Redis.from_url(devstack.redis_url)
    try:
        assert direct.exists(f"cache:order:{oid}") == 0
    finally:
        direct.close()
    allowed = api.request("GET", f"/api/orders/{oid}", headers={"Authorization": f"Bearer {token}"})
    assert allowed.status_code == 200 and allowed.headers["x-cache"] == "MISS"


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"orderId": "nope"}', b"[]", b'{"orderId": "ord_AAAAAAAAAAAAAAAAAAAAAA"}'],
)
def test_hopeless_jobs_answer_489_non_retryable(api: Api, body: bytes) -> None:
    """A signed job that can never succeed (malformed, unknown order) stops QStash's retries."""
    response = deliver(api, body)
    assert response.status_code == 489, response.text
    assert response.headers["upstash-nonretryable-error"] == "true"


def test_provider_failure_releases_the_lease_and_retries_send_once(api: Api) -> None:
    """A 5xx from the email provider answers 503 (QStash retries); the retry sends it once."""
    email = f"p-{uuid.uuid4().hex[:8]}@example.com"
    oid = new_order(api, email)
    armed = api.http.post(
        f"{api.stack.raw['email_api_url']}/_devstack/fail-next", json={"count": 1, "status": 500}
    )
    assert armed.status_code == 200
    first = deliver(api, job_body(oid))
    assert first.status_code == 503, first.text
    assert api.emails_to(email) == []
    second = deliver(api, job_body(oid))
    assert second.status_code == 200 and second.json()["status"] == "sent"
    third = deliver(api, job_body(oid))
    assert third.json()["status"] == "already_sent"
    assert len(api.emails_to(email)) == 1


def test_recipient_email_limit(api: Api) -> None:
    """At most EMAIL_RATE_LIMIT (here 2/h) confirmations reach one address; the next job is
    answered 429 with Retry-After so QStash tries again later."""
    email = f"r-{uuid.uuid4().hex[:8]}@example.com"
    orders = [new_order(api, email) for _ in range(3)]
    answers = [deliver(api, job_body(oid)) for oid in orders]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["retry-after"]) > 0
    assert len(api.emails_to(email)) == 2
