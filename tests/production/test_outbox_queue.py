"""The outbox as a bounded queue, on a private devstack (real Redis, real local QStash) with a
loopback QStash stand-in in front that can hang, refuse (401), fail (503) or pass through,
and counts every publish: request-path and cron deadlines, backoff, dead letters, no flush
after rejected requests, the batch API and the subrequest cap."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from devstack.dev import DEV_CRON_SECRET, app_env
from shared.jobs.outbox import DEAD_KEY, OUTBOX_KEY, DeadJob, Job, Outbox
from shared.qstash import QStash
from shared.redis import Redis
from shared.web.reporting import ErrorReport
from tests.conftest import Devstack, running_devstack
from tests.support.inprocess import app_client
from tests.support.transports import CountingTransport
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

BASE_URL = "http://testserver"
BOUND_S = 10.0  # generous: the budgets are 2 s (request path) and 5 s (flush)
ORDER = {
    "customer_email": "queue@example.com",
    "currency": "EUR",
    "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 100}],
}
ADMIN = {"authorization": f"Bearer {DEV_CRON_SECRET}"}
DEAD_PATH = "/api/admin/outbox/dead"


class QStashStandIn:
    """A loopback server in front of the devstack's QStash: `mode` decides each publish
    ("pass", "hang": accept and never answer, "refuse": 401, "down": 503); deliveries to
    `{url}/api/jobs/...` are answered 200 and recorded."""

    def __init__(self, upstream: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.upstream = upstream
        self.mode = "pass"
        self.publishes: list[int] = []  # messages per publish call (1, or the batch size)
        self.deliveries: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/api/jobs/{tail:.*}", self._deliver)
        app.router.add_route("*", "/{tail:.*}", self._publish)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._client = httpx.AsyncClient(timeout=10)
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._client.aclose())
        self._loop.run_until_complete(runner.cleanup())

    async def _deliver(self, request: web.Request) -> web.Response:
        self.deliveries.append(json.loads(await request.read()))
        return web.json_response({"ok": True})

    async def _publish(self, request: web.Request) -> web.Response:
        body = await request.read()
        batch = request.path == "/v2/batch"
        self.publishes.append(len(json.loads(body)) if batch else 1)
        if self.mode == "hang":
            await self._release.wait()
            return web.json_response({"error": "released"}, status=503)
        if self.mode == "refuse":
            return web.json_response({"error": "invalid token"}, status=401)
        if self.mode == "down":
            return web.json_response({"error": "unavailable"}, status=503)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "content-length", "transfer-encoding", "connection")
        }
        answer = await self._client.request(
            request.method, self.upstream + request.path_qs, headers=headers, content=body
        )
        return web.Response(
            status=answer.status_code,
            body=answer.content,
            content_type="application/json",
        )

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("QStash stand-in did not start")

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._release.set)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class Clock:
    """Unix ms that moves only when told to."""

    def __init__(self) -> None:
        self.now = int(time.time() * 1000)

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def stack() -> Iterator[Devstack]:
    """A private devstack: the outbox hashes are global keys, so no other test may share them."""
    with running_devstack() as stack:
        yield stack


@pytest.fixture
def stub(stack: Devstack) -> Iterator[QStashStandIn]:
    stand_in = QStashStandIn(str(stack.raw["qstash_url"]))
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture
async def redis(stack: Devstack) -> AsyncIterator[Redis[str]]:
    """The devstack Redis with both outbox hashes emptied first."""
    client = Redis(stack.redis_rest_url, stack.redis_rest_token)
    await client.delete(OUTBOX_KEY, DEAD_KEY)
    yield client
    await client.aclose()


def env_for(stack: Devstack, stub: QStashStandIn, **extra: str) -> dict[str, str]:
    """The app's environment with QStash behind the stand-in; jobs are delivered to it too."""
    return {
        **app_env(stack.raw, stub.url),
        "QSTASH_URL": stub.url,
        "RATE_LIMIT": "1000/10s",
        **extra,
    }


def legacy_job(job_url: str, order_id: str | None = None) -> str:
    """A job as the outbox stored it before it had retry state."""
    order_id = order_id or f"ord_{uuid.uuid4().hex[:22]}"
    return json.dumps(
        {
            "id": order_id,
            "url": job_url,
            "body": {"orderId": order_id, "requestId": "r-legacy"},
            "dedup_id": f"confirm-{order_id}",
            "retries": 3,
            "delay": "2s",
        }
    )


async def stored_job(redis: Redis[str], job_id: str) -> Job | None:
    raw = await redis.hget(OUTBOX_KEY, job_id)
    return None if raw is None else Job.from_json(raw)


# -- the request path ------------------------------------------------------------------------


async def test_order_with_a_hanging_qstash_answers_201_from_the_outbox(
    stack: Devstack, stub: QStashStandIn, redis: Redis[str]
) -> None:
    """With QStash accepting and never answering, POST /api/orders (the whole ASGI call) ends
    within the bound with a 201; the job waits in the outbox and is published once QStash is
    back and its next attempt is due."""
    stub.mode = "hang"
    async with app_client(env_for(stack, stub)) as client:
        started = time.monotonic()
        response = await client.post("/api/orders", json=ORDER)
        elapsed = time.monotonic() - started
    assert response.status_code == 201, response.text
    assert elapsed < BOUND_S, f"POST /api/orders took {elapsed:.1f}s"
    order_id = response.json()["order"]["id"]
    job = await stored_job(redis, order_id)
    assert job is not None and job.attempts == 1 and job.next_at_ms > time.time() * 1000
    assert stub.publishes == [1]  # the request's own publish; the flush found nothing due

    stub.mode = "pass"
    clock = Clock()
    clock.now = job.next_at_ms
    qstash = QStash(str(stack.raw["qstash_token"]), url=stub.url)
    report = await Outbox(redis, qstash, clock_ms=clock).flush()
    assert (report.published, report.remaining) == (1, 0)
    assert await stored_job(redis, order_id) is None


async def test_request_publish_budget_is_a_total(
    stack: Devstack, stub: QStashStandIn, redis: Redis[str]
) -> None:
    """Outbox.publish(job) with a hanging QStash returns False within its 2 s budget (a 5 s
    bound: slack for a busy machine), the job kept with one attempt counted."""
    stub.mode = "hang"
    job = Job.from_json(legacy_job(f"{stub.url}/api/jobs/send-confirmation"))
    await redis.hset(OUTBOX_KEY, {job.id: job.to_json()})
    outbox = Outbox(redis, QStash(str(stack.raw["qstash_token"]), url=stub.url))
    started = time.monotonic()
    assert await outbox.publish(job) is False
    assert time.monotonic() - started < 5.0
    kept = await stored_job(redis, job.id)
    assert kept is not None and kept.attempts == 1


# -- dead letters and the retry storm ---------------------------------------------------------


async def test_permanently_refused_job_is_dead_lettered_once_and_never_republished(
    stack: Devstack, stub: QStashStandIn, redis: Redis[str]
) -> None:
    """A 401 from QStash moves the job to the dead letters at its first failure, reports it
    once, and 20 later health checks and a cron flush publish nothing."""
    stub.mode = "refuse"
    reports: list[ErrorReport] = []
    async with app_client(env_for(stack, stub), error_reporter=reports.append) as client:
        created = await client.post("/api/orders", json=ORDER)
        assert created.status_code == 201, created.text
        order_id = created.json()["order"]["id"]
        assert await redis.hexists(OUTBOX_KEY, order_id) is False
        letter = DeadJob.from_json(str(await redis.hget(DEAD_KEY, order_id)))
        assert (letter.status, letter.job.id) == (401, order_id)
        publishes_before = len(stub.publishes)
        health = [(await client.get("/api/health")).status_code for _ in range(20)]
        cron = await client.get("/api/cron/flush-outbox", headers=ADMIN)
    assert set(health) == {200}
    assert cron.status_code == 200 and cron.json()["published"] == 0
    assert len(stub.publishes) == publishes_before == 1
    dead_reports = [r for r in reports if r.path.endswith(order_id)]
    assert len(dead_reports) == 1 and len(reports) == 1
    assert dead_reports[0].status == 401 and "dead-lettered" in dead_reports[0].message
    assert dead_reports[0].path == f"{DEAD_PATH}/{order_id}"


async def test_rejected_requests_trigger_no_flush(
    stack: Devstack, stub: QStashStandIn, redis: Redis[str]
) -> None:
    """With a job due in the outbox, 429s and 404s publish nothing; the next successful
    request flushes it (a job stored before retry state existed)."""
    env = env_for(stack, stub, RATE_LIMIT="1/1d")  # no window edge inside the test
    ip = "192.0.2.77"
    async with app_client(env, client_ip=ip) as client:
        assert (await client.get("/api/health")).status_code == 200  # the budget is spent
    job_id = f"ord_{uuid.uuid4().hex[:22]}"
    await redis.hset(
        OUTBOX_KEY, {job_id: legacy_job(f"{stub.url}/api/jobs/send-confirmation", job_id)}
    )
    async with app_client(env, client_ip=ip) as client:
        limited = [(await client.get("/api/health")).status_code for _ in range(10)]
        assert set(limited) == {429}
        assert stub.publishes == []
    async with app_client(env, client_ip="192.0.2.78") as client:
        missing = await client.get("/api/nothing-here")
        assert missing.status_code == 404 and stub.publishes == []
    async with app_client(env, client_ip="192.0.2.79") as client:
        assert (await client.get("/api/health")).status_code == 200
    assert stub.publishes == [1]
    assert await stored_job(redis, job_id) is None


# -- backoff ----------------------------------------------------------------------------------


async def test_transient_failure_waits_for_its_next_attempt_time(
    stack: Devstack, stub: QStashStandIn, redis: Redis[str]
) -> None:
    """A job QStash answers 503 for is retried only from its next-attempt time, with the
    delay doubling, and published once QStash recovers."""
    stub.mode = "down"
    job = Job.from_json(legacy_job(f"{stub.url}/api/jobs/send-confirmation"))
    await redis.hset(OUTBOX_KEY, {job.id: legacy_job(job.url, job.id)})
    clock = Clock()
    t0 = clock.now
    outbox = Outbox(redis, QStash(str(stack.raw["qstash_token"]), url=stub.url), clock_ms=clock)
    assert outbox.should_flush()
    first = await outbox.flush()
    assert (first.published, first.failed, first.remaining) == (0, 1, 1)
    stored = await stored_job(redis, job.id)
    assert stored is not None and (stored.attempts, stored.next_at_ms) == (1, t0 + 10_000)

    clock.now = t0 + 9_999
    assert not outbox.should_flush()
    early = await outbox.flush()  # the cron path flushes regardless: still nothing is sent
    assert (early.published, early.failed, early.remaining) == (0, 0, 1)
    assert stub.publishes == [1]

    clock.now = t0 + 10_000
    assert outbox.should_flush()
    await outbox.flush()
    stored = await stored_job(redis, job.id)
    assert stored is not None and (stored.attempts, stored.next_at_ms) == (2, t0 + 30_000)
    assert stub.publishes == [1, 1]

    stub.mode = "pass"
    clock.now = t0 + 30_000
    assert (await outbox.flush()).published == 1
    assert await stored_job(redis, job.id) is None and not outbox.should_flush()


# -- the cron flush ----------------------------------------------------------------------------


async def test_cron_flush_with_a_hanging_qstash_is_bounded(
    stack: Devstack, stub: QStashStandIn, redis: Redis[str]
) -> None:
    """Three due jobs and a QStash that never answers: the cron route and the Worker's
    `scheduled` each return within the bound, after ONE batch publish each."""
    stub.mode = "hang"
    job_url = f"{stub.url}/api/jobs/send-confirmation"
    await redis.hset(OUTBOX_KEY, {f"ord_{i}": legacy_job(job_url, f"ord_{i}") for i in range(3)})
    async with app_client(env_for(stack, stub)) as client:
        started = time.monotonic()
        response = await client.get("/api/cron/flush-outbox", headers=ADMIN)
        cron_s = time.monotonic() - started
        assert response.status_code == 200, response.text
        assert cron_s < BOUND_S, f"cron flush took {cron_s:.1f}s"
        assert response.json() == {"published": 0, "failed": 3, "dead": 0, "remaining": 3}
        assert stub.publishes == [3]
        await redis.delete(OUTBOX_KEY)
        await redis.hset(OUTBOX_KEY, {"ord_x": legacy_job(job_url, "ord_x")})
        started = time.monotonic()
        await client.adapter.bundle().scheduled("*/10 * * * *")
        assert time.monotonic() - started < BOUND_S
    assert stub.publishes == [3, 1]


# -- batch and subrequest caps ------------------------------------------------------------------


async def test_flush_uses_one_batch_and_stays_within_its_subrequests(
    stack: Devstack, stub: QStashStandIn, redis: Redis[str]
) -> None:
    """60 due jobs: one flush sends one /v2/batch of 50 in at most four subrequests (read,
    publish, settle, and EVAL if the script was not loaded); the next one sends the other 10."""
    job_url = f"{stub.url}/api/jobs/send-confirmation"
    await redis.hset(
        OUTBOX_KEY, {f"ord_b{i:02d}": legacy_job(job_url, f"ord_b{i:02d}") for i in range(60)}
    )
    transport = CountingTransport()
    outbox = Outbox(
        Redis(stack.redis_rest_url, stack.redis_rest_token, transport=transport),
        QStash(str(stack.raw["qstash_token"]), url=stub.url, transport=transport),
    )
    first = await outbox.flush()
    assert (first.published, first.remaining) == (50, 10)
    assert 3 <= len(transport.sent) <= 4 and stub.publishes == [50]
    assert outbox.should_flush()
    second = await outbox.flush()
    assert (second.published, second.remaining) == (10, 0)
    assert stub.publishes == [50, 10] and not outbox.should_flush()


async def test_refused_batch_dead_letters_only_the_refused_job(
    stack: Devstack, stub: QStashStandIn, redis: Redis[str]
) -> None:
    """QStash refuses a batch holding one bad destination: the jobs are retried one by one,
    the good ones published, the bad one dead-lettered, and the subrequest cap holds."""
    job_url = f"{stub.url}/api/jobs/send-confirmation"
    bad = json.loads(legacy_job("https://example.com/not-loopback", "ord_a_bad"))
    await redis.hset(
        OUTBOX_KEY,
        {
            "ord_a_bad": json.dumps(bad),
            "ord_b_ok": legacy_job(job_url, "ord_b_ok"),
            "ord_c_ok": legacy_job(job_url, "ord_c_ok"),
        },
    )
    letters: list[DeadJob] = []
    transport = CountingTransport()
    outbox = Outbox(
        Redis(stack.redis_rest_url, stack.redis_rest_token, transport=transport),
        QStash(str(stack.raw["qstash_token"]), url=stub.url, transport=transport),
        on_dead_letter=letters.append,
        max_subrequests=6,
    )
    first = await outbox.flush()
    assert len(transport.sent) <= 6 and stub.publishes == [3, 1, 1]
    assert (first.published, first.dead, first.remaining) == (1, 1, 1)  # cap: 2 singles
    assert [d.job.id for d in letters] == ["ord_a_bad"] and letters[0].status == 400
    second = await outbox.flush()
    assert (second.published, second.remaining) == (1, 0)
    assert len(letters) == 1


# -- the authenticated dead-letter routes --------------------------------------------------------


async def test_dead_letters_are_listed_replayed_and_dropped_with_the_secret(
    stack: Devstack, stub: QStashStandIn, redis: Redis[str]
) -> None:
    """Without CRON_SECRET every dead-letter route is 401; with it the list shows the job,
    a replay publishes it through QStash (delivered once), DELETE drops another for good."""
    stub.mode = "refuse"
    async with app_client(env_for(stack, stub)) as client:
        first = (await client.post("/api/orders", json=ORDER)).json()["order"]["id"]
        second = (await client.post("/api/orders", json=ORDER)).json()["order"]["id"]
        wrong = {"authorization": "Bearer not-the-secret"}
        for headers in ({}, wrong):
            assert (await client.get(DEAD_PATH, headers=headers)).status_code == 401
            retry = await client.post(f"{DEAD_PATH}/{first}/retry", headers=headers)
            drop = await client.delete(f"{DEAD_PATH}/{first}", headers=headers)
            assert (retry.status_code, drop.status_code) == (401, 401)
            assert retry.json() == {"error": "Unauthorized"}

        listed = await client.get(DEAD_PATH, headers=ADMIN)
        assert listed.status_code == 200
        dead = {d["id"]: d for d in listed.json()["dead"]}
        assert set(dead) == {first, second} and dead[first]["status"] == 401
        assert dead[first]["body"]["orderId"] == first

        refused_again = await client.post(f"{DEAD_PATH}/{first}/retry", headers=ADMIN)
        assert refused_again.status_code == 409  # still refused: back in the dead letters
        stub.mode = "pass"
        replayed = await client.post(f"{DEAD_PATH}/{first}/retry", headers=ADMIN)
        assert replayed.status_code == 200 and replayed.json() == {"status": "published"}
        dropped = await client.delete(f"{DEAD_PATH}/{second}", headers=ADMIN)
        assert dropped.status_code == 204
        assert (await client.delete(f"{DEAD_PATH}/{second}", headers=ADMIN)).status_code == 404
        missing = await client.post(f"{DEAD_PATH}/ord_nope/retry", headers=ADMIN)
        assert missing.status_code == 404
        assert (await client.get(DEAD_PATH, headers=ADMIN)).json() == {"dead": []}
    assert await redis.hlen(OUTBOX_KEY) == 0

    async def delivered() -> list[dict[str, Any]]:  # QStash delivers to the stand-in's job URL
        return stub.deliveries

    await eventually(delivered, "the replayed job's delivery", timeout=10)
    assert [d["orderId"] for d in stub.deliveries] == [first]
