"""The order API end to end on Vercel: the real vercel-runtime launcher (IPC mode),
behind a stand-in edge proxy, on the real devstack (Redis REST, QStash, email sink)."""

from __future__ import annotations

import concurrent.futures
import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis as redis_py

from shared.qstash.signing import delivery_claims, sign_jwt
from tests.conftest import Devstack
from tests.launcher.app_client import Api, running_api
from tests.support.identities import fresh_address, unique_email
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.launcher, pytest.mark.integration]
JSON_TYPE = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def api(devstack: Devstack) -> Iterator[Api]:
    with running_api(devstack) as api:
        yield api


def test_health(api: Api) -> None:
    """GET /api/health reports Redis reachable with its latency, and the limit headers."""
    response = api.request("GET", "/api/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok" and body["redis"]["ok"] is True
    assert body["redis"]["latency_ms"] >= 0
    assert response.headers["x-ratelimit-limit"] == "5"
    assert response.headers["x-request-id"]


def test_order_job_email_and_cached_reads(api: Api) -> None:
    """An order is created, QStash delivers the signed job, exactly one email arrives, and
    two reads are MISS then HIT with one Redis HTTP request each."""
    email = unique_email()
    ip = fresh_address()
    created = api.create_order(email, ip=ip)
    assert created.status_code == 201, created.text
    data = created.json()
    order, token = data["order"], data["access_token"]
    assert order["total_cents"] == 2500 and order["customer_email"] == email
    assert order["id"].startswith("ord_") and len(token) >= 40

    mails = wait_for(lambda: api.emails_to(email), what="the confirmation email")
    assert len(mails) == 1
    assert order["id"][-8:] in mails[0]["subject"] or order["id"] in mails[0]["text"]
    # Once the job handler recorded the email as sent, no second one exists.
    direct = redis_py.Redis.from_url(api.stack.redis_url)
    try:
        wait_for(lambda: direct.exists(f"email:sent:{order['id']}"), what="the sent marker")
    finally:
        direct.close()
    assert len(api.emails_to(email)) == 1

    # Warm-up: the first miss after a server start also loads the cache's scripts.
    warm = api.create_order(unique_email()).json()
    auth = {"Authorization": f"Bearer {warm['access_token']}"}
    assert api.request("GET", f"/api/orders/{warm['order']['id']}", headers=auth).status_code == 200

    read_ip = fresh_address()
    counts, statuses = [], []
    for _ in range(2):
        before = api.redis_requests()
        response = api.request(
            "GET",
            f"/api/orders/{order['id']}",
            ip=read_ip,
            headers={"Authorization": f"Bearer {token}"},
        )
        api.launcher.wait_for_end(api.edge.request_ids[response.headers["x-request-id"]])
        counts.append(api.redis_requests() - before)
        statuses.append(response.headers["x-cache"])
        assert response.status_code == 200, response.text
        assert response.json()["id"] == order["id"]
        assert "token_sha256" not in response.json()
    assert statuses == ["MISS", "HIT"]
    # HIT: the rate-limit EVALSHA and the cache GET leave in ONE pipelined HTTP request.
    # MISS: that request, the lock, the origin read (Redis here) and the write+unlock.
    assert counts == [4, 1], counts


def test_order_read_needs_the_token(api: Api) -> None:
    """A wrong or missing token answers 404 exactly like an unknown id."""
    created = api.create_order(unique_email()).json()
    oid = created["order"]["id"]
    wrong = api.request("GET", f"/api/orders/{oid}", headers={"Authorization": "Bearer nope"})
    missing = api.request("GET", f"/api/orders/{oid}")
    unknown = api.request("GET", "/api/orders/ord_AAAAAAAAAAAAAAAAAAAAAA?token=x")
    assert wrong.status_code == missing.status_code == unknown.status_code == 404
    assert wrong.json() == missing.json() == unknown.json() == {"error": "Order not found"}
    by_query = api.request("GET", f"/api/orders/{oid}?token={created['access_token']}")
    assert by_query.status_code == 200


def test_rate_limit_answers_429_with_headers(api: Api) -> None:
    """The 6th request in the window from one address is a 429 with limit headers."""
    ip = fresh_address()
    answers = [api.request("GET", "/api/health", ip=ip) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    # The approximated sliding window may admit one more when a window edge falls inside
    # the burst (it weighs the previous window by elapsed time); never two more.
    extra = [api.request("GET", "/api/health", ip=ip) for _ in range(2)]
    denied = extra[0] if extra[0].status_code == 429 else extra[1]
    assert denied.status_code == 429, [e.status_code for e in extra]
    assert denied.json() == {"error": "Too many requests"}
    assert denied.headers["x-ratelimit-remaining"] == "0"
    assert int(denied.headers["retry-after"]) >= 1
    assert "ratelimit-policy" in denied.headers and "ratelimit" in denied.headers
    other = api.request("GET", "/api/health", ip=fresh_address())
    assert other.status_code == 200


def test_forged_job_call_is_401(api: Api) -> None:
    """A job call without, or with a forged, signature is refused with 401 JSON."""
    body = b'{"orderId": "ord_AAAAAAAAAAAAAAAAAAAAAA"}'
    unsigned = api.request("POST", "/api/jobs/send-confirmation", content=body)
    job_url = api.env["APP_URL"] + "/api/jobs/send-confirmation"
    forged = sign_jwt(
        delivery_claims(job_url, body, now=time.time(), jwt_id=uuid.uuid4().hex), "sig_not_the_key"
    )
    bad = api.request(
        "POST",
        "/api/jobs/send-confirmation",
        content=body,
        headers={"Upstash-Signature": forged},
    )
    assert unsigned.status_code == bad.status_code == 401
    assert bad.json()["error"] == "Invalid signature"


def test_duplicate_and_concurrent_deliveries_send_one_email(api: Api) -> None:
    """Eight signed deliveries of one job, concurrent and repeated, send exactly one email."""
    email = unique_email()
    oid = api.create_order(email).json()["order"]["id"]
    wait_for(lambda: api.emails_to(email), what="the first email")
    job_url = api.env["APP_URL"] + "/api/jobs/send-confirmation"
    body = f'{{"orderId": "{oid}", "requestId": "dup-test"}}'.encode()

    def deliver(_: int) -> int:
        token = sign_jwt(
            delivery_claims(job_url, body, now=time.time(), jwt_id=uuid.uuid4().hex),
            api.env["QSTASH_CURRENT_SIGNING_KEY"],
        )
        return api.request(
            "POST",
            "/api/jobs/send-confirmation",
            content=body,
            headers={"Upstash-Signature": token, "content-type": "application/json"},
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(deliver, range(8)))
    assert set(statuses) <= {200, 409}, statuses
    assert len(api.emails_to(email)) == 1


def test_fresh_order_concurrent_deliveries_one_email(devstack: Devstack) -> None:
    """Concurrent first deliveries of a job whose email is not sent yet still send one email."""
    with running_api(devstack, QSTASH_URL="http://127.0.0.1:9") as api:
        email = unique_email()
        created = api.create_order(email)
        assert created.status_code == 201  # QStash is down: the job waits in the outbox
        oid = created.json()["order"]["id"]
        job_url = api.env["APP_URL"] + "/api/jobs/send-confirmation"
        body = f'{{"orderId": "{oid}"}}'.encode()

        def deliver(_: int) -> int:
            token = sign_jwt(
                delivery_claims(job_url, body, now=time.time(), jwt_id=uuid.uuid4().hex),
                api.env["QSTASH_NEXT_SIGNING_KEY"],  # rotation: the next key is accepted too
            )
            return api.request(
                "POST",
                "/api/jobs/send-confirmation",
                content=body,
                headers={"Upstash-Signature": token},
            ).status_code

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(deliver, range(6)))
        assert statuses.count(200) >= 1 and set(statuses) <= {200, 409}, statuses
        assert len(api.emails_to(email)) == 1
    # Its job still waits in the shared outbox, addressed to this instance's (now gone) URL:
    # remove it so later flushes in the session do not publish it to nowhere.
    direct = redis_py.Redis.from_url(devstack.redis_url)
    try:
        assert direct.hdel("outbox:jobs", oid) == 1
    finally:
        direct.close()


def test_qstash_down_then_flush_loses_nothing(api: Api, devstack: Devstack) -> None:
    """With QStash unreachable the order still answers 201 and the job stays in the outbox with
    its next attempt backed off (the background flush after the response leaves it alone); a
    cron flush once it is due publishes it and the email arrives."""
    email = unique_email()
    # Another instance of the same deployment (same APP_URL) that cannot reach QStash.
    with running_api(devstack, QSTASH_URL="http://127.0.0.1:9", APP_URL=api.env["APP_URL"]) as down:
        created = down.create_order(email)
        assert created.status_code == 201, created.text
        rid = created.headers["x-request-id"]
        down.launcher.wait_for_end(down.edge.request_ids[rid])
        logs = "\n".join(down.launcher.logs_for(down.edge.request_ids[rid]))
        # Once in the request; the background flush after the response (before the
        # launcher's `end`) finds the job not due yet and sends nothing.
        oid = created.json()["order"]["id"]
        assert logs.count(f"publish of job {oid} failed") == 1, logs
    assert api.emails_to(email) == []
    direct = redis_py.Redis.from_url(devstack.redis_url, decode_responses=True)
    try:  # time passes: the job's next attempt is due
        job = json.loads(direct.hget("outbox:jobs", oid) or "{}")
        assert job["attempts"] == 1
        direct.hset("outbox:jobs", oid, json.dumps({**job, "next_at_ms": 0}))
    finally:
        direct.close()
    flushed = api.cron()
    assert flushed.status_code == 200, flushed.text
    assert flushed.json()["published"] >= 1
    wait_for(lambda: api.emails_to(email), what="the email after the flush")
    assert len(api.emails_to(email)) == 1


def test_cron_requires_the_secret(api: Api) -> None:
    """The cron path answers 401 without the CRON_SECRET bearer token."""
    assert api.request("GET", "/api/cron/flush-outbox").status_code == 401
    wrong = api.request("GET", "/api/cron/flush-outbox", headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401


def test_idempotency_key_semantics(api: Api) -> None:
    """A replay returns the original answer marked replayed; another body with the key is 422."""
    key = f"key-{uuid.uuid4().hex}"
    email = unique_email()
    first = api.create_order(email, **{"Idempotency-Key": key})
    again = api.create_order(email, **{"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    other = api.create_order(unique_email(), **{"Idempotency-Key": key})
    assert other.status_code == 422
    wait_for(lambda: api.emails_to(email), what="the email")
    assert len(api.emails_to(email)) == 1


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("POST", "/api/orders", {"content": b"{not json", "headers": JSON_TYPE}, 400),
        ("POST", "/api/orders", {"content": b"[" * 10_000, "headers": JSON_TYPE}, 400),
        ("POST", "/api/orders", {"content": b"{}", "headers": {"content-type": "text/plain"}}, 415),
        ("POST", "/api/orders", {"json": {"customer_email": "x", "items": []}}, 422),
        ("POST", "/api/orders", {"json": [1, 2]}, 422),
        ("PUT", "/api/orders", {}, 405),
        ("GET", "/api/nothing-here", {}, 404),
        ("GET", "/elsewhere", {}, 404),
        ("POST", "/api/orders", {"content": b"x" * 70_000}, 413),
        (
            "POST",
            "/api/orders",
            {
                "json": {
                    "customer_email": "a@b.co",
                    "items": [{"sku": "A", "quantity": 1, "unit_price_cents": -5}],
                }
            },
            422,
        ),
    ],
)
def test_bad_input_gets_clear_json_errors(
    api: Api, method: str, path: str, kwargs: dict[str, object], status: int
) -> None:
    """Malformed or too deeply nested JSON 400, validation 422, wrong method 405, unknown path
    404, non-JSON body 415, too large 413."""
    response = api.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.text


def test_validation_errors_name_the_fields(api: Api) -> None:
    """A 422 lists each failing field without echoing the submitted values."""
    response = api.request(
        "POST",
        "/api/orders",
        json={"customer_email": "not-an-email-secret", "items": [{"sku": "", "quantity": 0}]},
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["detail"]}
    assert {"customer_email", "items.0.sku", "items.0.quantity"} <= fields
    assert "not-an-email-secret" not in response.text


def test_openapi_document(api: Api) -> None:
    """GET /api/openapi.json serves the OpenAPI 3.1 document built from the models."""
    response = api.request("GET", "/api/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1") and "/api/orders" in doc["paths"]
    assert "OrderIn" in doc["components"]["schemas"]


def test_logs_carry_request_ids_and_no_secrets(api: Api) -> None:
    """Request logs are structured with the request id and hold no emails or tokens."""
    email = unique_email()
    created = api.create_order(email)
    token = created.json()["access_token"]
    oid = created.json()["order"]["id"]
    read = api.request("GET", f"/api/orders/{oid}?token={token}")
    rid = read.headers["x-request-id"]
    api.launcher.wait_for_end(api.edge.request_ids[rid])
    logs = "\n".join(api.launcher.logs_for(api.edge.request_ids[rid]))
    assert rid in logs
    everything = "\n".join(m.text for m in api.launcher.messages if m.type == "log")
    assert email not in everything and token not in everything
    assert api.env["QSTASH_TOKEN"] not in everything


def test_upstream_down_is_503(devstack: Devstack) -> None:
    """With Redis REST unreachable, order creation answers 503 JSON, not a traceback."""
    with running_api(devstack, UPSTASH_REDIS_REST_URL="http://127.0.0.1:9") as api:
        response = api.create_order(unique_email())
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "Upstream service unavailable"
        health = api.request("GET", "/api/health")
        assert health.status_code == 503
