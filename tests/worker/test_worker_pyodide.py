"""The deployable Worker, end to end: the exact `wrangler deploy --dry-run` output served by real
Pyodide (0.28 = Python 3.13, 314 = Python 3.14) with the real `workers` SDK, against the devstack.

One Pyodide process per version serves every test here (`served_worker`, in conftest.py), on a
port picked up front so APP_URL is the Worker's own URL: the local QStash really calls it back.
The env is `devstack.dev.app_env(...)` plus RATE_LIMIT="3/10s"; every request sends its own
`CF-Connecting-IP` (198.51.100.X, unique per test and version) so rate limits never leak
between tests.

Offline Pyodide cannot load pydantic (no registry carries a Pyodide build of pydantic_core), so
`POST /api/orders` answers 503 here by design (`shared.app.assembly`); a deployed Worker
vendors pydantic from pyproject's dependencies. Orders are therefore seeded straight into
Redis with `shared.orders.records`, exactly as `OrderService` stores them.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import httpx
import pytest
import redis as redis_py
from worker_testkit import DELIVERY_TIMEOUT, seed_order, seed_outbox_job
from worker_testkit import emails_to as inbox

from shared.jobs.outbox import OUTBOX_KEY
from shared.orders.records import new_order_id
from shared.qstash import PublishResult, QStash
from shared.qstash.signing import delivery_claims, sign_jwt
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.pyodide, pytest.mark.integration]

LIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "ratelimit")


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def redis(devstack: Any) -> Iterator[redis_py.Redis]:
    """redis-py on the devstack's Redis (the server behind the REST API the Worker uses)."""
    client = redis_py.Redis.from_url(devstack.redis_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


def emails_to(http: httpx.Client, devstack: Any, address: str) -> list[dict[str, Any]]:
    return inbox(http, str(devstack.raw["email_api_url"]), address)


def publish_job(devstack: Any, url: str, payload: dict[str, Any]) -> PublishResult:
    """Publishes through the devstack's QStash from CPython (our own QStash client)."""

    async def publish() -> PublishResult:
        qstash = QStash(str(devstack.raw["qstash_token"]), url=str(devstack.raw["qstash_url"]))
        try:
            return await qstash.publish_json(url, payload, retries=3)
        finally:
            await qstash.aclose()

    return asyncio.run(publish())


def qstash_message_done(http: httpx.Client, devstack: Any, message_id: str) -> bool:
    """True once the local QStash finished the message (it forgets finished messages)."""
    response = http.get(
        f"{devstack.raw['qstash_url']}/v2/messages/{message_id}",
        headers={"Authorization": f"Bearer {devstack.raw['qstash_token']}"},
    )
    return response.status_code == 404


def redis_http_requests(http: httpx.Client, devstack: Any) -> int:
    response = http.get(
        f"{devstack.redis_rest_url}/_devstack/stats",
        headers={"Authorization": f"Bearer {devstack.redis_rest_token}"},
    )
    response.raise_for_status()
    count: int = response.json()["http_requests"]
    return count


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def get_pipelined(base_url: str, requests: list[tuple[str, dict[str, str]]]) -> list[RawAnswer]:
    """Sends the GETs in ONE write on one connection (HTTP/1.1 pipelining) and reads the answers.

    Node's HTTP server parses them in the same event-loop turn and hands every one to the Worker
    at once, so the invocations run concurrently and issue their Redis commands in the same
    auto-pipeline flush window: if they shared a batch, they would share an HTTP request.
    (Separate connections arrive a few ms apart and almost never overlap that window.)
    """
    url = urlsplit(base_url)
    payload = b""
    for path, headers in requests:
        lines = [f"GET {path} HTTP/1.1", f"Host: {url.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        payload += ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(payload)
        stream = sock.makefile("rb")
        return [_read_answer(stream) for _ in requests]


def _read_answer(stream: BinaryIO) -> RawAnswer:
    status = int(stream.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return RawAnswer(status, headers, stream.read(int(headers["content-length"])))
    assert headers.get("transfer-encoding") == "chunked", headers
    body = b""
    while size := int(stream.readline().strip(), 16):
        body += stream.read(size)
        stream.readline()
    stream.readline()
    return RawAnswer(status, headers, body)


def assert_json_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert response.headers.get("x-request-id"), dict(response.headers)
    return body


# --- tests ------------------------------------------------------------------------------------


def test_first_request_flushes_the_outbox_in_background(served_worker: Any) -> None:
    """The fresh isolate's first request flushed a waiting outbox job after answering (warm-up)."""
    warm_up = served_worker.warm_up
    assert warm_up["status"] == 200, warm_up
    assert warm_up["outbox_entry_removed"] and warm_up["emails"] == 1, warm_up


def test_health(served_worker: Any, http: httpx.Client, client_ips: Iterator[str]) -> None:
    """`GET /api/health` answers 200 JSON with Redis ok and its latency, plus limit headers."""
    response = http.get(
        f"{served_worker.url}/api/health", headers={"CF-Connecting-IP": next(client_ips)}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["redis"]["ok"] is True
    assert isinstance(body["redis"]["latency_ms"], int | float) and body["redis"]["latency_ms"] >= 0
    assert response.headers["x-request-id"]
    assert response.headers["x-ratelimit-limit"] == "3"
    assert response.headers["x-ratelimit-remaining"] == "2"


def test_error_mapping(served_worker: Any, http: httpx.Client, client_ips: Iterator[str]) -> None:
    """Unknown path 404, wrong method 405 with Allow, big body 413: JSON, each with a request id."""
    ip = {"CF-Connecting-IP": next(client_ips)}
    unknown_api = http.get(f"{served_worker.url}/api/nope", headers=ip)
    assert_json_error(unknown_api, 404, "Not found")
    assert all(h in unknown_api.headers for h in LIMIT_HEADERS), dict(unknown_api.headers)

    outside_api = http.get(
        f"{served_worker.url}/not-the-api", headers={**ip, "X-Request-ID": "caller-id-123"}
    )
    assert_json_error(outside_api, 404, "Not found")
    assert outside_api.headers["x-request-id"] == "caller-id-123"  # a sane caller id is kept
    assert "x-ratelimit-limit" not in outside_api.headers  # only /api/* is rate limited

    wrong_method = http.put(f"{served_worker.url}/api/health", headers=ip, content=b"{}")
    assert_json_error(wrong_method, 405, "Method not allowed")
    assert wrong_method.headers["allow"] == "GET, HEAD"
    assert all(h in wrong_method.headers for h in LIMIT_HEADERS), dict(wrong_method.headers)
    assert len({unknown_api.headers["x-request-id"], wrong_method.headers["x-request-id"]}) == 2

    # Refused by the adapter before the app runs (MAX_BODY_BYTES defaults to 64 KiB).
    too_large = http.post(f"{served_worker.url}/api/orders", headers=ip, content=b"x" * 70_000)
    assert_json_error(too_large, 413, "Request body too large")


def test_rate_limit_answers_429(
    served_worker: Any, http: httpx.Client, client_ips: Iterator[str]
) -> None:
    """From one client IP the 4th `/api/*` request in the 10 s window is a 429 with Retry-After
    (the 5th when a window edge falls inside the burst: the sliding window is upstream's
    approximation, which weighs the previous window by the time elapsed)."""
    ip = next(client_ips)
    answers = []
    for _ in range(5):
        answer = http.get(f"{served_worker.url}/api/health", headers={"CF-Connecting-IP": ip})
        answers.append(answer)
        if answer.status_code == 429:
            break
    statuses = [a.status_code for a in answers]
    assert statuses in ([200] * 3 + [429], [200] * 4 + [429]), statuses
    remaining = [int(a.headers["x-ratelimit-remaining"]) for a in answers[:-1]]
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0, remaining

    denied = answers[-1]
    assert_json_error(denied, 429, "Too many requests")
    assert denied.json() == {"error": "Too many requests"}
    assert 1 <= int(denied.headers["retry-after"]) <= 10
    assert denied.headers["x-ratelimit-limit"] == "3"
    assert denied.headers["x-ratelimit-remaining"] == "0"
    assert int(denied.headers["x-ratelimit-reset"]) > time.time() * 1000 - 1000
    assert denied.headers["ratelimit-policy"] == '"default";q=3;w=10'

    other = http.get(
        f"{served_worker.url}/api/health", headers={"CF-Connecting-IP": next(client_ips)}
    )
    assert other.status_code == 200, "the limit is per client IP"


def test_order_creation_is_503_without_pydantic(
    served_worker: Any, http: httpx.Client, client_ips: Iterator[str]
) -> None:
    """`POST /api/orders` is a clear 503 in offline Pyodide, which cannot load pydantic."""
    response = http.post(
        f"{served_worker.url}/api/orders",
        headers={"CF-Connecting-IP": next(client_ips), "Idempotency-Key": uuid.uuid4().hex},
        json={
            "customer_email": "ada@example.com",
            "currency": "EUR",
            "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 1250}],
        },
    )
    body = assert_json_error(
        response, 503, "Order creation is unavailable: pydantic could not be imported"
    )
    assert "pydantic" in body["error"]
    assert "x-ratelimit-limit" in response.headers


def test_order_read_is_cached(
    served_worker: Any, http: httpx.Client, redis: redis_py.Redis, client_ips: Iterator[str]
) -> None:
    """A seeded order reads as MISS then HIT, without its token digest; a wrong token is 404."""
    record, token = seed_order(redis)
    url = f"{served_worker.url}/api/orders/{record.id}"
    owner = {"CF-Connecting-IP": next(client_ips), "Authorization": f"Bearer {token}"}

    first = http.get(url, headers=owner)
    assert first.status_code == 200, first.text
    assert first.headers["x-cache"] == "MISS"
    second = http.get(url, headers=owner)
    assert second.status_code == 200, second.text
    assert second.headers["x-cache"] == "HIT"
    for response in (first, second):
        assert response.json() == record.public()
        assert "token_sha256" not in response.text
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-ratelimit-limit"] == "3"

    stranger = {"CF-Connecting-IP": next(client_ips)}
    forged = secrets.token_urlsafe(32)
    wrong = http.get(url, headers={**stranger, "Authorization": f"Bearer {forged}"})
    assert_json_error(wrong, 404, "Order not found")
    assert wrong.headers["x-cache"] == "HIT"  # answered from the cache, like an unknown id
    missing = http.get(url, headers=stranger)
    assert_json_error(missing, 404, "Order not found")
    unknown = http.get(f"{served_worker.url}/api/orders/{new_order_id()}", headers=stranger)
    assert_json_error(unknown, 404, "Order not found")


def test_job_intake_checks_the_signature(
    served_worker: Any, http: httpx.Client, redis: redis_py.Redis, devstack: Any
) -> None:
    """The job URL answers 401 without a signature, with a forged one and for a tampered body."""
    record, _ = seed_order(redis)
    body = json.dumps({"orderId": record.id, "requestId": "t"}).encode()
    headers = {"content-type": "application/json"}
    missing = http.post(served_worker.job_url, content=body, headers=headers)
    assert_json_error(missing, 401, "Invalid signature")

    claims = delivery_claims(served_worker.job_url, body, now=time.time(), jwt_id=uuid.uuid4().hex)
    forged = sign_jwt(claims, "sig_not_the_signing_key_" + uuid.uuid4().hex)
    wrong_key = http.post(
        served_worker.job_url, content=body, headers={**headers, "Upstash-Signature": forged}
    )
    assert_json_error(wrong_key, 401, "Invalid signature")

    genuine = sign_jwt(claims, str(devstack.raw["qstash_current_signing_key"]))
    tampered = body.replace(b'"t"', b'"x"')
    altered = http.post(
        served_worker.job_url, content=tampered, headers={**headers, "Upstash-Signature": genuine}
    )
    assert_json_error(altered, 401, "Invalid signature")
    assert "x-ratelimit-limit" not in altered.headers  # the job path is exempt from the limit
    assert emails_to(http, devstack, record.customer_email) == []
    assert not redis.exists(f"email:sent:{record.id}")


def test_signed_delivery_sends_one_email(
    served_worker: Any, http: httpx.Client, redis: redis_py.Redis, devstack: Any
) -> None:
    """A job published through the local QStash is delivered signed and emails once, even twice."""
    record, _ = seed_order(redis)
    payload = {"orderId": record.id, "requestId": "t"}
    first = publish_job(devstack, served_worker.job_url, payload)
    emails = wait_for(
        lambda: emails_to(http, devstack, record.customer_email),
        "the confirmation email",
        timeout=DELIVERY_TIMEOUT,
    )
    assert len(emails) == 1, emails
    assert record.id in emails[0]["subject"] + (emails[0]["text"] or "")
    assert emails[0]["idempotency_key"] == f"order-confirmation/{record.id}"
    wait_for(
        lambda: qstash_message_done(http, devstack, first.message_id),
        "the first message to finish",
        timeout=DELIVERY_TIMEOUT,
    )
    assert redis.get(f"email:sent:{record.id}") == emails[0]["id"]

    duplicate = publish_job(devstack, served_worker.job_url, payload)
    assert duplicate.message_id != first.message_id and not duplicate.deduplicated
    wait_for(
        lambda: qstash_message_done(http, devstack, duplicate.message_id),
        "the duplicate delivery to finish",
        timeout=DELIVERY_TIMEOUT,
    )
    assert len(emails_to(http, devstack, record.customer_email)) == 1
    assert not redis.exists(f"email:lease:{record.id}")


def test_scheduled_flushes_the_outbox(
    served_worker: Any, http: httpx.Client, redis: redis_py.Redis, devstack: Any
) -> None:
    """`scheduled` publishes an outbox job (entry removed) and its confirmation email arrives."""
    record, _ = seed_order(redis)
    job = seed_outbox_job(redis, record, served_worker.job_url)

    ran = http.get(f"{served_worker.url}/__scheduled", params={"cron": "*/10 * * * *"})
    assert ran.status_code == 200 and ran.text == "Ran scheduled event", ran.text
    # scheduled awaits the flush itself, so the entry is gone when the call returns.
    assert not redis.hexists(OUTBOX_KEY, job.id)

    emails = wait_for(
        lambda: emails_to(http, devstack, record.customer_email),
        "the email for the flushed job",
        timeout=DELIVERY_TIMEOUT,
    )
    assert len(emails) == 1 and emails[0]["idempotency_key"] == f"order-confirmation/{record.id}"
    # The job finishes (sent marker written) before the next test reads Redis counters.
    wait_for(
        lambda: redis.get(f"email:sent:{record.id}"), "the sent marker", timeout=DELIVERY_TIMEOUT
    )


def test_concurrent_requests_never_share_a_batch(
    served_worker: Any,
    http: httpx.Client,
    redis: redis_py.Redis,
    devstack: Any,
    client_ips: Iterator[str],
) -> None:
    """Two concurrent order reads cost twice the Redis HTTP requests of one: no shared batch."""
    record, token = seed_order(redis)
    url = f"{served_worker.url}/api/orders/{record.id}"
    auth = {"Authorization": f"Bearer {token}"}
    warm = http.get(url, headers={**auth, "CF-Connecting-IP": next(client_ips)})
    assert warm.headers["x-cache"] == "MISS", warm.text

    before = redis_http_requests(http, devstack)
    single = http.get(url, headers={**auth, "CF-Connecting-IP": next(client_ips)})
    one = redis_http_requests(http, devstack) - before
    assert single.headers["x-cache"] == "HIT"
    # The limiter's EVALSHA and the cache GET of one request leave in ONE pipeline.
    assert one == 1, one

    path = f"/api/orders/{record.id}"
    pair = [(path, {**auth, "CF-Connecting-IP": next(client_ips)}) for _ in range(2)]
    before = redis_http_requests(http, devstack)
    answers = get_pipelined(served_worker.url, pair)
    both = redis_http_requests(http, devstack) - before
    assert [a.status for a in answers] == [200, 200], answers
    assert {a.headers["x-cache"] for a in answers} == {"HIT"}
    assert both == 2 * one, (
        f"two concurrent requests made {both} Redis HTTP requests, not {2 * one}"
    )
