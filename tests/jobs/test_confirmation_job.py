"""`POST /api/jobs/send-confirmation` under faults, through the real app in process on the
devstack (Redis REST, email sink), with signed deliveries standing in for QStash's retries:
provider outages cost no email, permanent conditions answer 489, a marker that could not be
written is a retry, and a hanging provider is cut off by the sender's total deadline."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from aiohttp import ClientSession, web

from devstack.dev import DEV_EMAIL_KEY
from shared.app.assembly import AppBundle, build_app
from shared.http.transport import Transport
from shared.jobs.email import EmailSender
from shared.orders.confirmation import confirmation_routes
from shared.redis import Redis
from shared.routes import CONFIRMATION_JOB as JOB_PATH
from shared.web.app import App
from tests.conftest import Devstack
from tests.support.deliveries import signed_headers, signed_job
from tests.support.identities import unique_email
from tests.support.inprocess import app_client, app_test_env
from tests.support.loopback import loopback

pytestmark = pytest.mark.integration

NON_RETRYABLE = "upstash-nonretryable-error"


# -- helpers -----------------------------------------------------------------------------------


async def create_order(client: httpx.AsyncClient, email: str) -> str:
    """An order created through the API; its id."""
    body = {
        "customer_email": email,
        "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 1250}],
    }
    response = await client.post("/api/orders", json=body)
    assert response.status_code == 201, response.text
    order_id: str = response.json()["order"]["id"]
    return order_id


async def emails_to(devstack: Devstack, email: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.get(f"{devstack.raw['email_api_url']}/emails", params={"to": email})
    assert response.status_code == 200
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def fail_next_sends(devstack: Devstack, count: int, status: int = 503) -> None:
    """Arms the email sink: its next `count` sends answer `status` and store nothing."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.post(
            f"{devstack.raw['email_api_url']}/_devstack/fail-next",
            json={"count": count, "status": status},
        )
    assert response.status_code == 200, response.text


def redis_of(devstack: Devstack) -> Redis[str]:
    return Redis(devstack.redis_rest_url, devstack.redis_rest_token)


def random_order_id() -> str:
    return "ord_" + uuid.uuid4().hex[:22]


def stored_order(order_id: str, email: str) -> str:
    """An order record as the repository stores it (JSON), with any address in it."""
    return json.dumps(
        {
            "id": order_id,
            "customer_email": email,
            "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 1250}],
            "currency": "EUR",
            "total_cents": 1250,
            "created_at": "2026-01-01T00:00:00+00:00",
            "token_sha256": "0" * 64,
        },
        ensure_ascii=False,
    )


def job_client(
    env: dict[str, str], *, email_api_url: str, deadline: float
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """The job route alone, built from the app's services but with an EmailSender pointed at
    `email_api_url` with a short total `deadline`."""

    def build(transport: Transport) -> AppBundle:
        bundle = build_app(env, transport=transport)
        services, settings = bundle.services, bundle.settings
        router = confirmation_routes(
            redis=services.redis,
            receiver=services.receiver,
            job_url=settings.job_url,
            repository=services.repository,
            sender=EmailSender(transport, email_api_url, api_key=DEV_EMAIL_KEY, deadline=deadline),
            email_from=settings.email_from,
            recipient_limiter=services.recipient_limiter,
        )
        return AppBundle(App(router, job_paths={JOB_PATH}), settings, services)

    return app_client(env, build=build)


@asynccontextmanager
async def behind_redis_proxy(
    devstack: Devstack,
    intercept: Callable[[web.Request, bytes], Awaitable[bytes]],
    **overrides: str,
) -> AsyncIterator[dict[str, str]]:
    """The app's test environment (with `overrides`) with Redis REST behind a loopback proxy:
    each request's body goes through `intercept` (which may rewrite it, or hang), then to the
    devstack's server."""
    async with ClientSession() as upstream:

        async def proxy(request: web.Request) -> web.Response:
            body = await intercept(request, await request.read())
            forwarded = ("authorization", "content-type")
            headers = {k: v for k, v in request.headers.items() if k.lower() in forwarded}
            async with upstream.request(
                request.method,
                devstack.redis_rest_url + request.path_qs,
                data=body,
                headers=headers,
            ) as answer:
                return web.Response(
                    status=answer.status, body=await answer.read(), content_type="application/json"
                )

        async with loopback(proxy) as url:
            yield app_test_env(devstack, UPSTASH_REDIS_REST_URL=url, **overrides)


# -- the per-recipient budget counts emails sent ----------------------------------------------


async def test_a_short_provider_outage_costs_no_email(devstack: Devstack) -> None:
    """With the provider failing three times and a budget of two emails, the fourth delivery
    sends the one email; the budget then holds one more email, not zero."""
    email = unique_email("outage")
    async with app_client(app_test_env(devstack, EMAIL_RATE_LIMIT="2/1h")) as client:
        order_id = await create_order(client, email)
        await fail_next_sends(devstack, 3)
        statuses = [
            (await client.post(JOB_PATH, **signed_job(devstack, order_id))).status_code
            for _ in range(4)
        ]
        assert statuses == [503, 503, 503, 200]
        assert len(await emails_to(devstack, email)) == 1
        again = await client.post(JOB_PATH, **signed_job(devstack, order_id))
        assert again.json() == {"status": "already_sent"}
        second = await create_order(client, email)
        sent = await client.post(JOB_PATH, **signed_job(devstack, second))
        assert sent.status_code == 200, sent.text  # one of two used: the failures were refunded
        third = await create_order(client, email)
        denied = await client.post(JOB_PATH, **signed_job(devstack, third))
        assert denied.status_code == 429  # and the budget still holds
    assert len(await emails_to(devstack, email)) == 2


# -- permanent conditions answer 489 ------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["ann\u202e@example.com", "ann\x1b@example.com", "ann\u200b@example.com", "a b@example.com"],
)
async def test_a_stored_unsendable_address_is_489(devstack: Devstack, address: str) -> None:
    """An order stored with an address the builder refuses (from before the API's rule) answers
    489 with Upstash-NonRetryable-Error, every time, and holds no lease."""
    order_id = random_order_id()
    redis = redis_of(devstack)
    await redis.set(f"order:{order_id}", stored_order(order_id, address))
    async with app_client(app_test_env(devstack)) as client:
        first = await client.post(JOB_PATH, **signed_job(devstack, order_id))
        second = await client.post(JOB_PATH, **signed_job(devstack, order_id))
    for response in (first, second):
        assert response.status_code == 489, response.text
        assert response.headers[NON_RETRYABLE] == "true"
        assert response.json()["error"] == "Order cannot be emailed"
        assert "customer_email" in response.json()["detail"]
        assert address not in response.text
    assert await redis.exists(f"email:lease:{order_id}", f"email:sent:{order_id}") == 0


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        '{"id": "x"}',
        json.dumps({**json.loads(stored_order("ord_x", "a@b.co")), "items": [{"sku": "A"}]}),
        json.dumps({**json.loads(stored_order("ord_x", "a@b.co")), "currency": "euro"}),
        json.dumps({**json.loads(stored_order("ord_x", "a@b.co")), "created_at": "yesterday"}),
    ],
    ids=["not-json", "missing-fields", "item-fields", "currency", "timestamp"],
)
async def test_an_unreadable_stored_order_is_489(devstack: Devstack, raw: str) -> None:
    """A corrupt or malformed stored order answers 489 (non-retryable), never a 500."""
    order_id = random_order_id()
    await redis_of(devstack).set(f"order:{order_id}", raw)
    async with app_client(app_test_env(devstack)) as client:
        response = await client.post(JOB_PATH, **signed_job(devstack, order_id))
    assert response.status_code == 489, response.text
    assert response.headers[NON_RETRYABLE] == "true"


# -- the sent marker --------------------------------------------------------------------------


async def test_a_marker_that_was_not_written_is_a_retry(devstack: Devstack) -> None:
    """When the transaction's marker command fails (a per-command error from real Redis), the
    job answers 503, not 200; the retry answers 200 with the same email, sent once, and the
    budget of one email is not spent twice."""
    armed = {"on": True}

    async def swap_marker(request: web.Request, body: bytes) -> bytes:
        if request.path == "/multi-exec" and armed["on"] and b"email:sent:" in body:
            # Swap the marker SET for INCR on the lease (a hex token): Redis runs the
            # transaction and answers that command with "ERR value is not an integer".
            commands = json.loads(body)
            lease = next(c[1] for c in commands if c[0].upper() == "DEL")
            return json.dumps([["INCR", lease], *commands[1:]]).encode()
        return body

    email = unique_email("marker")
    proxied = behind_redis_proxy(devstack, swap_marker, EMAIL_RATE_LIMIT="1/1h")
    async with proxied as env, app_client(env) as client:
        order_id = await create_order(client, email)
        failed = await client.post(JOB_PATH, **signed_job(devstack, order_id))
        assert failed.status_code == 503, failed.text
        assert await redis_of(devstack).exists(f"email:sent:{order_id}") == 0
        armed["on"] = False
        retried = await client.post(JOB_PATH, **signed_job(devstack, order_id))
        assert retried.status_code == 200, retried.text
    [sent] = await emails_to(devstack, email)
    assert retried.json() == {"status": "sent", "email_id": sent["id"]}
    assert await redis_of(devstack).get(f"email:sent:{order_id}") == sent["id"]


# -- the email provider's total deadline --------------------------------------------------------


async def never_answers(request: web.Request) -> web.StreamResponse:
    """Accepts the request and never answers."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def drips(request: web.Request) -> web.StreamResponse:
    """Answers 200 and sends its body one byte every 0.2 s: no phase is ever idle long enough
    for a per-phase timeout, so only a total deadline ends it."""
    response = web.StreamResponse(status=200, headers={"content-length": "100000"})
    await response.prepare(request)
    while True:
        await response.write(b" ")
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("upstream", [never_answers, drips], ids=["silent", "dripping"])
async def test_a_hanging_provider_is_a_503_within_the_deadline(
    devstack: Devstack, upstream: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> None:
    """With the provider hanging, the job answers 503 within a generous bound of its 1 s email
    deadline, twice in a row (lease released, budget of one email refunded)."""
    email = unique_email("hang")
    env = app_test_env(devstack, EMAIL_RATE_LIMIT="1/1h")
    async with app_client(env) as client:
        order_id = await create_order(client, email)
    async with loopback(upstream) as url, job_client(env, email_api_url=url, deadline=1.0) as jobs:
        for _ in range(2):
            started = time.monotonic()
            response = await asyncio.wait_for(
                jobs.post(JOB_PATH, **signed_job(devstack, order_id)), timeout=30
            )
            assert time.monotonic() - started < 20
            assert response.status_code == 503, response.text
    async with job_client(env, email_api_url=devstack.raw["email_api_url"], deadline=5) as jobs:
        sent = await jobs.post(JOB_PATH, **signed_job(devstack, order_id))
    assert sent.status_code == 200, sent.text
    assert len(await emails_to(devstack, email)) == 1


@pytest.mark.parametrize("path", [JOB_PATH, "/api/jobs/smoke"], ids=["job", "smoke"])
async def test_a_signed_deeply_nested_body_is_489(devstack: Devstack, path: str) -> None:
    """A correctly signed job (the confirmation or the smoke job) whose body nests JSON
    thousands deep is a non-retryable 489, never a 500: both parse with the same depth bound."""
    body = b"[" * 5000 + b"]" * 5000
    async with app_client(app_test_env(devstack)) as client:
        response = await client.post(
            path, content=body, headers=signed_headers(devstack, path, body)
        )
    assert response.status_code == 489, response.text
    assert response.headers[NON_RETRYABLE] == "true"


# -- the route's own worst case ------------------------------------------------------------------


async def test_redis_hanging_after_the_send_is_bounded(devstack: Devstack) -> None:
    """When Redis starts hanging right after the email is sent (marker write, refund and lease
    release all hang), the job answers 503 within its marker deadline plus the 1 s give-back
    bound, not three full Redis timeouts; once Redis is back the retry sends nothing twice."""
    hang = asyncio.Event()
    marker_seen: list[float] = []

    async def hang_after_the_send(request: web.Request, body: bytes) -> bytes:
        if request.path == "/multi-exec" and b"email:sent:" in body and not marker_seen:
            marker_seen.append(time.monotonic())
            hang.set()
        if hang.is_set():
            await asyncio.Event().wait()  # accepted, never answered
        return body

    email = unique_email("hang-after-send")
    # 2/1h: the refund could not reach the hanging Redis, so the retry takes a 2nd token.
    async with behind_redis_proxy(devstack, hang_after_the_send, EMAIL_RATE_LIMIT="2/1h") as env:
        async with app_client(env) as client:
            order_id = await create_order(client, email)
            failed = await asyncio.wait_for(
                client.post(JOB_PATH, **signed_job(devstack, order_id)), timeout=60
            )
            after_send = time.monotonic() - marker_seen[0]
        assert failed.status_code == 503, failed.text
        # Marker deadline (3 s) + give-back (1 s), with room for a loaded machine; three
        # sequential 5 s Redis timeouts (marker, refund, lease release) would take >= 10 s.
        assert after_send < 8.0, after_send
        hang.clear()
        async with app_client(env) as client:
            await redis_of(devstack).delete(f"email:lease:{order_id}")  # its TTL is 60 s
            retried = await client.post(JOB_PATH, **signed_job(devstack, order_id))
        assert retried.status_code == 200, retried.text
    assert len(await emails_to(devstack, email)) == 1
