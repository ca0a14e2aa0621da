"""Faults end to end: the real app over loopback HTTP, a fault proxy before each upstream.

What must hold (issue 10): every accepted order gets exactly one confirmation email
while the provider fails transiently; no request outlives the platform's limit and
`POST /api/orders` answers within its publish budget when QStash misbehaves; Redis
faults give JSON 503s (never another 5xx, never a traceback) and things work again
after recovery. Each test counts emails per order, calls past their deadline and
5xx answers over everything the app served during the test (QStash deliveries and
background work included).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.faults.harness import (
    JOB_PATH,
    PLATFORM_LIMIT_S,
    Call,
    FaultyApp,
)
from tests.support.identities import unique_email
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(150)]

ORDER_ANSWER_BOUND_S = 10.0  # POST /api/orders with QStash down: its publish budget is ~2 s
REDIS_FAULT_BOUND_S = 15.0  # any route with Redis down: 5 s per exchange, a few exchanges
EMAIL_WAIT_S = 45.0
DRIP_S = 1.0  # drip mode: one byte of the answer per second, far below any read timeout


@dataclass
class Watch:
    """What the app did from one moment on: calls and log lines."""

    app: FaultyApp
    mark: float
    log_start: int

    @classmethod
    def start(cls, app: FaultyApp) -> Watch:
        return cls(app, time.monotonic(), len(app.logs.lines))

    def logs(self) -> str:
        return "\n".join(self.app.logs.lines[self.log_start :])

    def check(self, *, redis_fault: bool = False, job_retries: bool = False) -> list[Call]:
        """Waits for every call to return, then asserts: none past the platform's limit,
        none crashed, 5xx only where allowed (503 for Redis faults on any route, 503 on
        the job route when it asks QStash to retry), every error JSON, no traceback."""
        calls = self.app.settle(self.mark)
        past_deadline = [c for c in calls if past_their_deadline(c)]
        assert not past_deadline, f"calls past their deadline: {[_brief(c) for c in past_deadline]}"
        crashed = [c for c in calls if c.error is not None or c.status is None]
        assert not crashed, f"calls that escaped the app: {crashed}"
        server_errors = [c for c in calls if c.status is not None and c.status >= 500]
        allowed = [
            c
            for c in server_errors
            if c.status == 503 and (redis_fault or (job_retries and c.path == JOB_PATH))
        ]
        assert server_errors == allowed, f"5xx answers: {[_brief(c) for c in server_errors]}"
        for call in calls:
            if call.status is not None and call.status >= 400:
                assert isinstance(json.loads(call.body), dict), _brief(call)
        logs = self.logs()
        assert "Traceback" not in logs, logs
        return calls


def past_their_deadline(call: Call) -> bool:
    """A call the platform would have killed (its total, background work included, reached
    `maxDuration`), or a client-facing answer slower than any fault should make it."""
    if (call.total_s or 0) >= PLATFORM_LIMIT_S:
        return True
    return call.path != JOB_PATH and (call.answer_s or 0) >= REDIS_FAULT_BOUND_S


def _brief(call: Call) -> str:
    return f"{call.method} {call.path} -> {call.status} in {call.total_s}s: {call.body[:200]!r}"


def created(app: FaultyApp, email: str) -> tuple[str, str, float]:
    """Creates an order and returns (id, access token, seconds to answer); asserts 201."""
    started = time.monotonic()
    response = app.create_order(email)
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.text
    body = response.json()
    return body["order"]["id"], body["access_token"], elapsed


def wait_one_email_each(app: FaultyApp, order_ids: list[str], to: str) -> None:
    """Waits (bounded) until every order has an email, then asserts exactly one each."""

    def counts() -> dict[str, int]:
        return {o: len(app.emails_for(o, to)) for o in order_ids}

    def all_arrived() -> bool:
        seen = counts()
        if all(seen.values()):
            return True
        dead = json.dumps(app.dead_letters())
        lost = [o for o, n in seen.items() if n == 0 and o in dead]
        if lost:  # dead-lettered without an email: it will never arrive
            raise AssertionError(f"emails per order {seen}; dead-lettered unsent: {lost}")
        return False

    try:
        wait_for(
            all_arrived, f"one email for each of {len(order_ids)} orders", timeout=EMAIL_WAIT_S
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; emails per order now {counts()}") from None
    assert counts() == dict.fromkeys(order_ids, 1)


def flush_until_emailed(app: FaultyApp, order_id: str, to: str) -> None:
    """Calls the cron flush (as Vercel Cron would) until the order's email arrives."""

    def flushed_and_arrived() -> bool:
        response = app.cron()
        assert response.status_code == 200, response.text
        return bool(app.emails_for(order_id, to))

    wait_for(flushed_and_arrived, f"the cron flush to get {order_id} emailed", timeout=EMAIL_WAIT_S)
    assert len(app.emails_for(order_id, to)) == 1


# -- baseline --------------------------------------------------------------------------------


def test_without_faults_each_order_gets_one_email(app: FaultyApp) -> None:
    """With every proxy passing, an order is answered 201 and emailed exactly once."""
    watch = Watch.start(app)
    email = unique_email("baseline")
    order_id, _, _ = created(app, email)
    wait_one_email_each(app, [order_id], email)
    watch.check()
    assert app.email.seen["pass"] >= 1 and app.qstash.seen["pass"] >= 1


# -- the email provider ----------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["http500", "reset"], ids=["failing", "resetting"])
def test_email_provider_failing_twice_loses_no_email(app: FaultyApp, fault: str) -> None:
    """Two provider failures (500s, or connection resets) then success: each of three orders
    to one address (budget 3/1h) gets exactly one email; the budget counts emails sent, not
    attempts."""
    watch = Watch.start(app)
    email = unique_email(f"{fault}2")
    app.email.fail_next(2, fault)
    order_ids = [created(app, email)[0] for _ in range(3)]
    wait_one_email_each(app, order_ids, email)
    assert app.email.seen[fault] == 2
    watch.check(job_retries=True)


def test_email_provider_refusing_connections_briefly_loses_no_email(app: FaultyApp) -> None:
    """A provider refusing connections for a few attempts, then back: one email per order."""
    watch = Watch.start(app)
    email = unique_email("refuse")
    app.email.set_mode("refuse")
    order_ids = [created(app, email)[0] for _ in range(2)]

    def failed_jobs() -> int:
        return sum(1 for c in app.calls_since(watch.mark, JOB_PATH) if c.status == 503)

    # More failed deliveries than orders: at least one job was retried while refused.
    wait_for(lambda: failed_jobs() > len(order_ids), "retried job deliveries", timeout=30)
    app.email.set_mode("pass")
    wait_one_email_each(app, order_ids, email)
    watch.check(job_retries=True)


def test_email_provider_hanging_then_recovering_loses_no_email(app: FaultyApp) -> None:
    """A provider that accepts and never answers: the job gives up within its deadline,
    QStash retries, and once the provider answers again each order has exactly one email."""
    watch = Watch.start(app)
    email = unique_email("hang")
    app.email.set_mode("hang")
    order_ids = [created(app, email)[0] for _ in range(2)]
    # More hung sends than orders: at least one job gave up on its own and was retried.
    wait_for(lambda: app.email.seen["hang"] > len(order_ids), "a retried email attempt", timeout=40)
    app.email.set_mode("pass")
    wait_one_email_each(app, order_ids, email)
    calls = watch.check(job_retries=True)
    jobs = [c for c in calls if c.path == JOB_PATH]
    assert jobs and all((c.total_s or 0) < PLATFORM_LIMIT_S for c in jobs)


def test_email_provider_dripping_its_answer_is_cut_by_the_job_deadline(app: FaultyApp) -> None:
    """A provider that answers one byte per second (no single read waits long): the job
    still returns within the platform's limit (a total deadline, not per-phase timeouts);
    once the provider is normal again the order has exactly one email."""
    watch = Watch.start(app)
    email = unique_email("drip")
    app.email.set_mode("drip", delay=DRIP_S)
    order_id, _, _ = created(app, email)
    wait_for(lambda: app.email.seen["drip"] >= 2, "a job retried after a dripping send", timeout=40)
    app.email.set_mode("pass")
    wait_one_email_each(app, [order_id], email)
    watch.check(job_retries=True)


# -- QStash ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["hang", "refuse", "reset", "http500"])
def test_qstash_fault_answers_201_quickly_and_the_job_is_published_later(
    app: FaultyApp, fault: Any
) -> None:
    """With QStash failing, POST /api/orders still answers 201 within its publish budget;
    once QStash is back, the cron flush publishes the job and exactly one email arrives."""
    watch = Watch.start(app)
    email = unique_email(f"qstash-{fault}")
    app.qstash.set_mode(fault)
    order_id, _, elapsed = created(app, email)
    assert elapsed < ORDER_ANSWER_BOUND_S, f"201 after {elapsed:.1f}s with QStash {fault}"
    if fault != "refuse":  # a refused connect never reaches the proxy
        assert app.qstash.seen[fault] >= 1
    assert app.emails_for(order_id, email) == []
    app.qstash.set_mode("pass")
    flush_until_emailed(app, order_id, email)
    watch.check()


def test_qstash_dripping_its_answer_still_gets_a_201_quickly(app: FaultyApp) -> None:
    """With QStash answering one byte per second, POST /api/orders still answers 201 within
    its publish budget (a total deadline); the job is published once QStash is normal."""
    watch = Watch.start(app)
    email = unique_email("qstash-drip")
    app.qstash.set_mode("drip", delay=DRIP_S)
    started = time.monotonic()
    try:
        response = app.create_order(email, timeout=PLATFORM_LIMIT_S)
    except httpx.TimeoutException:
        raise AssertionError(f"no answer within {PLATFORM_LIMIT_S:g}s, QStash dripping") from None
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.text
    assert elapsed < ORDER_ANSWER_BOUND_S, f"201 after {elapsed:.1f}s with QStash dripping"
    order_id = response.json()["order"]["id"]
    app.qstash.set_mode("pass")
    flush_until_emailed(app, order_id, email)
    watch.check()


def test_cron_flush_with_qstash_hanging_is_bounded(app: FaultyApp) -> None:
    """Three jobs left in the outbox and QStash hanging: one cron flush answers within the
    platform's limit (bounded in time, not one full timeout per job); once QStash is back,
    each order gets exactly one email."""
    watch = Watch.start(app)
    email = unique_email("cron-hang")
    app.qstash.set_mode("refuse")  # fails fast: the jobs stay in the outbox
    order_ids = [created(app, email)[0] for _ in range(3)]
    app.qstash.set_mode("hang")
    started = time.monotonic()
    try:
        response = app.cron_within(PLATFORM_LIMIT_S)
    except httpx.TimeoutException:
        raise AssertionError(f"the cron flush took over {PLATFORM_LIMIT_S:g}s") from None
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert elapsed < PLATFORM_LIMIT_S
    app.qstash.set_mode("pass")

    def flushed_and_arrived() -> bool:
        assert app.cron().status_code == 200
        return all(app.emails_for(o, email) for o in order_ids)

    wait_for(flushed_and_arrived, "the cron flush to get every order emailed", timeout=EMAIL_WAIT_S)
    assert {o: len(app.emails_for(o, email)) for o in order_ids} == dict.fromkeys(order_ids, 1)
    watch.check()


# -- Redis -----------------------------------------------------------------------------------


@dataclass
class Answer:
    route: str
    status: int
    body: Any
    seconds: float


def _hit_every_route(app: FaultyApp, order_id: str, token: str) -> list[Answer]:
    """Every public route at once (one client each), timed."""
    auth = {"Authorization": f"Bearer {token}"}
    order = {
        "customer_email": unique_email("redis-down"),
        "currency": "EUR",
        "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 100}],
    }
    routes: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/api/health", {}),
        ("POST", "/api/orders", {"json": order}),
        ("GET", f"/api/orders/{order_id}", {"headers": auth}),
        ("DELETE", f"/api/orders/{order_id}", {"headers": auth}),
        (
            "GET",
            "/api/cron/flush-outbox",
            {"headers": {"Authorization": "Bearer devstack-cron-secret"}},
        ),
        ("GET", "/api/openapi.json", {}),
        ("GET", "/api/no-such-route", {}),
    ]

    def hit(route: tuple[str, str, dict[str, Any]]) -> Answer:
        method, path, kwargs = route
        with httpx.Client(timeout=60) as client:
            started = time.monotonic()
            response = client.request(method, app.url + path, **kwargs)
            seconds = time.monotonic() - started
        try:
            body = response.json()
        except ValueError:
            body = response.text
        return Answer(f"{method} {path}", response.status_code, body, seconds)

    with ThreadPoolExecutor(len(routes)) as pool:
        return list(pool.map(hit, routes))


NEEDS_REDIS = ("GET /api/health", "POST /api/orders", "GET /api/orders/", "DELETE /api/orders/")


@pytest.mark.parametrize("fault", ["hang", "refuse", "reset", "http500", "drip"])
def test_redis_fault_gives_json_503_within_bound_and_recovers(app: FaultyApp, fault: Any) -> None:
    """With the Redis REST server failing, every route answers within the bound, those that
    need Redis with a JSON 503, none with another 5xx or a traceback; afterwards all works."""
    email = unique_email(f"redis-{fault}")
    order_id, token, _ = created(app, email)
    wait_one_email_each(app, [order_id], email)  # its job is done before Redis fails
    watch = Watch.start(app)
    app.redis.set_mode(fault, delay=DRIP_S)
    answers = _hit_every_route(app, order_id, token)
    app.redis.set_mode("pass")
    slow = [a for a in answers if a.seconds >= REDIS_FAULT_BOUND_S]
    assert not slow, f"past {REDIS_FAULT_BOUND_S:g}s with Redis {fault}: {slow}"
    for answer in answers:
        assert isinstance(answer.body, dict), answer
        assert answer.status < 500 or answer.status == 503, answer
        if answer.route.startswith(NEEDS_REDIS):
            assert answer.status == 503, answer
            if not answer.route.startswith("GET /api/health"):
                assert "error" in answer.body, answer
    if fault != "refuse":
        assert app.redis.seen[fault] >= 1
    watch.check(redis_fault=True)

    after = Watch.start(app)
    assert app.request("GET", "/api/health").status_code == 200
    still_there = app.request(
        "GET", f"/api/orders/{order_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert still_there.status_code == 200, still_there.text  # the failed DELETE deleted nothing
    new_id, _, _ = created(app, email)
    wait_one_email_each(app, [order_id, new_id], email)
    after.check()


@pytest.mark.parametrize("fault", ["http500", "reset"])
def test_redis_failing_right_after_the_send_doubles_no_email(app: FaultyApp, fault: Any) -> None:
    """Redis failing just after the provider accepted the email (the "sent" marker may not be
    written): the job answers 503 or recovers, never 500, and no second email is sent."""
    email = unique_email(f"redis-job-{fault}")
    watch = Watch.start(app)
    app.email.set_mode("slow", delay=0.5)  # holds the job inside its send
    order_id, _, _ = created(app, email)
    wait_for(lambda: app.email.seen["slow"] >= 1, "the job to reach the provider", timeout=20)
    app.redis.fail_next(3, fault)
    wait_one_email_each(app, [order_id], email)
    app.email.set_mode("pass")
    wait_for(
        lambda: app.redis.seen[fault] >= 1, "an injected Redis failure after the send", timeout=10
    )
    watch.check(job_retries=True, redis_fault=True)
    assert len(app.emails_for(order_id, email)) == 1


def test_slow_redis_still_serves_every_request(app: FaultyApp) -> None:
    """With every Redis answer 0.3 s late, orders are created, read and emailed once."""
    watch = Watch.start(app)
    app.redis.set_mode("slow", delay=0.3)
    email = unique_email("slow-redis")
    order_id, token, _ = created(app, email)
    auth = {"Authorization": f"Bearer {token}"}
    assert app.request("GET", "/api/health").status_code == 200
    assert app.request("GET", f"/api/orders/{order_id}", headers=auth).status_code == 200
    wait_one_email_each(app, [order_id], email)
    assert app.redis.seen["slow"] >= 3
    watch.check()
