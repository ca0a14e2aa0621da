"""Each route's worst case, as the README's "Deadlines" table states it, asserted row by row.

The real app is served on loopback with a fault proxy before Redis REST, QStash and the email
provider (`FaultyApp`). For each back end, that back end's proxy hangs (accepts and never
answers) while every route of the table is called at once, one client each; each call is
tagged with its row (`?row=...`) so the app's own timing of it (`Call`: arrival to answer,
and to the end of the ASGI call, background work included) is found among the QStash
deliveries and flushes that run meanwhile. Then, per row and back end: the status is the
table's, the answer comes within the table's time plus `SLACK_S`, and neither the answer nor
the whole call (plus the "+5 s flush" where the row has one) passes the row's bound.

In those runs the cron row's own flush keeps the background one from starting (one flush at
a time), so the "+5 s flush" after a success is checked on its own, with a job due. The bound
is for a back end that slows down mid-request; the same calls are made once more with a back
end answering every request just under one of the app's deadlines, so that a route waits
out step after step: there the table states no time, and only the bound is asserted.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from devstack.dev import DEV_CRON_SECRET
from shared import routes
from shared.app.assembly import AppBundle, build_app
from shared.errors import UpstashError
from shared.http.httpx_transport import HttpxTransport
from shared.jobs.outbox import DEAD_KEY, FLUSH_BUDGET_S, OUTBOX_KEY, DeadJob, Job, Outbox
from shared.web.asgi import AsgiAdapter
from tests.conftest import Devstack
from tests.faults.harness import PLATFORM_LIMIT_S, Call, FaultyApp
from tests.support.deliveries import signed_headers
from tests.support.identities import unique_email
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(300)]

SLACK_S = 1.5  # over the table's measured time: a loaded 2-core machine
# Over a bound (a sum of deadlines): the work between the deadlines (parsing, signing, the
# event loop shared with every other route of the run) is not part of any deadline.
BOUND_OVERHEAD_S = 0.5
BACKENDS = ("redis", "qstash", "email")
CRON_AUTH = {"Authorization": f"Bearer {DEV_CRON_SECRET}"}


Answer = tuple[int, float]  # a status, and the seconds the table measured (0: "at once")


@dataclass(frozen=True)
class Row:
    """One line of the table: the answer with each back end hanging, the bound, and whether
    an outbox flush may follow a success ("+5 s flush")."""

    id: str
    method: str
    path: str  # the route's template
    redis: Answer
    qstash: Answer
    email: Answer
    bound_s: float
    flush_after: bool = True

    def expected(self, backend: str) -> Answer:
        answer: Answer = getattr(self, backend)
        return answer


ROWS = (
    Row("health", "GET", routes.HEALTH, (503, 2.0), (200, 0), (200, 0), 2),
    Row("create", "POST", routes.ORDERS, (503, 4.2), (201, 1.8), (201, 0), 6),
    Row("read", "GET", routes.ORDER, (503, 6.0), (200, 0), (200, 0), 15),
    Row("delete", "DELETE", routes.ORDER, (503, 6.0), (204, 0), (204, 0), 17),
    Row("job", "POST", routes.CONFIRMATION_JOB, (503, 3.0), (200, 0), (503, 8.0), 19),
    Row("smoke", "POST", routes.SMOKE_JOB, (503, 5.0), (200, 0), (200, 0), 5),
    Row("cron", "GET", routes.FLUSH_OUTBOX, (503, 4.5), (200, 4.8), (200, 0), 5, flush_after=False),
    Row("dead-list", "GET", routes.DEAD_LETTERS, (503, 5.0), (200, 0), (200, 0), 10),
    Row("dead-drop", "DELETE", routes.DEAD_LETTER, (503, 5.0), (204, 0), (204, 0), 10),
    Row("dead-retry", "POST", routes.DEAD_LETTER_RETRY, (503, 5.0), (202, 1.8), (200, 0), 22),
    Row("openapi", "GET", routes.OPENAPI, (200, 1.0), (200, 0), (200, 0), 1),
)


# -- the devstack, read and written directly (never through a proxy) -------------------------


def redis_call(app: FaultyApp, *command: str) -> Any:
    """One command on the devstack's Redis REST server, bypassing the proxy."""
    response = httpx.post(
        str(app.info["redis_rest_url"]),
        json=list(command),
        headers={"Authorization": f"Bearer {app.info['redis_rest_token']}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["result"]


def job_for(app: FaultyApp, order_id: str) -> Job:
    """A confirmation job for `order_id`, as the outbox stores it, due now."""
    return Job(
        id=f"job_{uuid.uuid4().hex[:16]}",
        url=app.url + routes.CONFIRMATION_JOB,
        body={"orderId": order_id, "requestId": "route-bounds"},
        dedup_id=uuid.uuid4().hex,
    )


def outbox_of(app: FaultyApp) -> Outbox:
    """The served app's outbox (the one its middleware flushes in the background)."""
    adapter = app.recorder.app
    assert isinstance(adapter, AsgiAdapter)
    bundle = adapter.bundle()
    assert isinstance(bundle, AppBundle)
    return bundle.services.outbox


@dataclass
class Stage:
    """What one run's calls act on: orders (with tokens), dead letters, a due outbox job."""

    read: tuple[str, str]
    delete: tuple[str, str]
    job_order: str
    dead_drop: str
    dead_retry: str


def staged(app: FaultyApp) -> Stage:
    """Orders created with QStash refusing (their jobs then dropped from the outbox, so no
    delivery races the run's own), two dead letters and one due job in the outbox (for a
    fourth order, so their deliveries never meet the run's own job call)."""
    mark = time.monotonic()
    app.qstash.set_mode("refuse")
    orders = []
    for _ in range(4):
        response = app.create_order(unique_email("bounds"))
        assert response.status_code == 201, response.text
        orders.append((response.json()["order"]["id"], response.json()["access_token"]))
    app.settle(mark)  # the flushes these answers started are over
    app.qstash.set_mode("pass")
    redis_call(app, "DEL", OUTBOX_KEY, DEAD_KEY)
    dead = [DeadJob(job_for(app, orders[3][0]), 400, "refused", 1) for _ in range(2)]
    for letter in dead:
        redis_call(app, "HSET", DEAD_KEY, letter.job.id, letter.to_json())
    due = job_for(app, orders[3][0])
    redis_call(app, "HSET", OUTBOX_KEY, due.id, due.to_json())
    return Stage(orders[0], orders[1], orders[2][0], dead[0].job.id, dead[1].job.id)


def request_of(app: FaultyApp, devstack: Devstack, row: Row, stage: Stage) -> dict[str, Any]:
    """The keyword arguments of `httpx.request` for `row`'s call in this run."""
    path = row.path
    kwargs: dict[str, Any] = {}
    if row.id in ("read", "delete"):
        order_id, token = getattr(stage, row.id)
        path = routes.fill(routes.ORDER, id=order_id)
        kwargs["headers"] = {"Authorization": f"Bearer {token}"}
    elif row.id == "create":
        kwargs["json"] = {
            "customer_email": unique_email("bounds-new"),
            "currency": "EUR",
            "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 100}],
        }
    elif row.id in ("job", "smoke"):
        payload = (
            {"orderId": stage.job_order, "requestId": "route-bounds"}
            if row.id == "job"
            else {"nonce": uuid.uuid4().hex}
        )
        body = json.dumps(payload).encode()
        kwargs["content"] = body
        kwargs["headers"] = signed_headers(devstack, row.path, body, app.url)
    elif row.id in ("cron", "dead-list"):
        kwargs["headers"] = CRON_AUTH
    elif row.id in ("dead-drop", "dead-retry"):
        letter = stage.dead_drop if row.id == "dead-drop" else stage.dead_retry
        path = routes.fill(row.path, id=letter)
        kwargs["headers"] = CRON_AUTH
    return {"method": row.method, "url": f"{app.url}{path}?row={row.id}", **kwargs}


def tagged_and_done(app: FaultyApp, mark: float) -> dict[str, Call] | None:
    """The calls since `mark` tagged with a row, by row, once every row's call returned."""
    tagged = {
        c.query.removeprefix("row="): c for c in app.calls_since(mark) if c.query.startswith("row=")
    }
    return tagged if len(tagged) == len(ROWS) and all(c.done for c in tagged.values()) else None


def run(
    app: FaultyApp, devstack: Devstack, backend: str, slow_s: float | None = None
) -> dict[str, Call]:
    """Every row's call at once with `backend` hanging (or, with `slow_s`, answering each
    request that many seconds late); the app's record of each call."""
    stage = staged(app)
    proxy = {"redis": app.redis, "qstash": app.qstash, "email": app.email}[backend]
    mark = time.monotonic()
    if slow_s is None:
        proxy.set_mode("hang")
    else:
        proxy.set_mode("slow", delay=slow_s)

    def call(row: Row) -> int:
        with httpx.Client(timeout=PLATFORM_LIMIT_S) as client:
            return client.request(**request_of(app, devstack, row, stage)).status_code

    try:
        with ThreadPoolExecutor(len(ROWS)) as pool:
            statuses = dict(zip((r.id for r in ROWS), pool.map(call, ROWS), strict=True))
        # Until each tagged call returned, background work included (not QStash's
        # deliveries meanwhile: with the provider hanging, each one takes 8 s).
        recorded = wait_for(
            lambda: tagged_and_done(app, mark), "every row's call to return", timeout=60
        )
    finally:
        app.reset()
    assert {r: c.status for r, c in recorded.items()} == statuses
    return recorded


@pytest.fixture(scope="module")
def runs(faulty_app: FaultyApp, fault_stack: Devstack) -> Iterator[dict[str, dict[str, Call]]]:
    """One run per failing back end, made when a test first needs it."""

    class Runs(dict[str, dict[str, Call]]):
        def __missing__(self, backend: str) -> dict[str, Call]:
            faulty_app.reset()
            name, _, slow = backend.partition("-slow-")
            self[backend] = run(faulty_app, fault_stack, name, float(slow) if slow else None)
            return self[backend]

    yield Runs()


def _brief(call: Call) -> str:
    return (
        f"{call.method} {call.path} -> {call.status}, answered in {call.answer_s:.2f} s, "
        f"returned in {call.total_s:.2f} s: {call.body[:200]!r}"
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_route_answers_as_the_table_says_within_its_bound(
    runs: dict[str, dict[str, Call]], row: Row, backend: str
) -> None:
    """With `backend` hanging, the route answers the table's status within the table's time
    (plus slack), and neither its answer nor its whole call passes the row's bound."""
    call = runs[backend][row.id]
    status, measured_s = row.expected(backend)
    assert call.error is None and call.answer_s is not None and call.total_s is not None, call
    assert call.status == status, _brief(call)
    assert call.answer_s <= measured_s + SLACK_S, _brief(call)
    assert call.answer_s <= row.bound_s + BOUND_OVERHEAD_S, _brief(call)
    flush_s = FLUSH_BUDGET_S if row.flush_after and call.status < 400 else 0.0
    assert call.total_s <= row.bound_s + flush_s + BOUND_OVERHEAD_S, _brief(call)


@pytest.mark.parametrize(
    ("row_id", "backend", "flush_s"),
    [
        ("openapi", "redis", 4.5),
        ("openapi", "qstash", FLUSH_BUDGET_S),
        ("dead-list", "qstash", FLUSH_BUDGET_S),
    ],
)
def test_a_success_is_followed_by_a_flush_within_the_bound(
    app: FaultyApp, row_id: str, backend: str, flush_s: float
) -> None:
    """With a job due and `backend` hanging, the route answers as the table says, and the
    outbox flush that follows (waiting on the hanging back end) ends within the table's
    "+4.5 s flush" (Redis) or the flush budget (QStash), never past the bound plus 5 s."""
    row = next(r for r in ROWS if r.id == row_id)
    status, measured_s = row.expected(backend)
    due = job_for(app, "ord_" + uuid.uuid4().hex[:22])
    redis_call(app, "HSET", OUTBOX_KEY, due.id, due.to_json())
    outbox_of(app).expect_now()  # as after a failed publish: the next success flushes
    mark = time.monotonic()
    {"redis": app.redis, "qstash": app.qstash}[backend].set_mode("hang")
    try:
        app.request(
            row.method, f"{row.path}?row=flush", headers=CRON_AUTH, timeout=PLATFORM_LIMIT_S
        )
        calls = app.settle(mark)
    finally:
        app.reset()
        redis_call(app, "HDEL", OUTBOX_KEY, due.id)
    (call,) = [c for c in calls if c.query == "row=flush"]
    assert call.answer_s is not None and call.total_s is not None, call
    assert call.status == status, _brief(call)
    assert call.answer_s <= measured_s + SLACK_S, _brief(call)
    assert call.total_s - call.answer_s > 1.0, f"no flush waited on {backend}: {_brief(call)}"
    assert call.total_s <= measured_s + flush_s + SLACK_S, _brief(call)
    assert call.total_s <= row.bound_s + FLUSH_BUDGET_S + BOUND_OVERHEAD_S, _brief(call)


# Each back end answering every request just under one of the app's deadlines: a route then
# waits out step after step, the way "bound" adds them up (Redis: the limiter's and the
# cache's 1 s, the job's and the order views' 3 s, an exchange's 5 s; QStash: the request
# path's 2 s publish, a flush's 5 s; the provider: the send's 8 s).
SLOW = ("redis-slow-0.95", "redis-slow-2.95", "redis-slow-4.95", "qstash-slow-1.7")
SLOW += ("qstash-slow-4.7", "email-slow-7.8")


@pytest.mark.parametrize("fault", SLOW)
def test_no_route_passes_its_bound_with_a_back_end_just_under_a_deadline(
    runs: dict[str, dict[str, Call]], fault: str
) -> None:
    """With a back end answering each request just under a deadline, every route answers
    (a 503 at worst, as JSON) and neither its answer nor its whole call passes its bound."""
    calls = runs[fault]
    past: list[str] = []
    for row in ROWS:
        call = calls[row.id]
        assert call.error is None and call.status is not None, _brief(call)
        assert call.status < 500 or call.status == 503, _brief(call)
        if call.status >= 400:
            assert isinstance(json.loads(call.body), dict), _brief(call)
        flush_s = FLUSH_BUDGET_S if row.flush_after and call.status < 400 else 0.0
        answer_s, total_s = call.answer_s or 0.0, call.total_s or 0.0
        if answer_s > row.bound_s + BOUND_OVERHEAD_S:
            past.append(f"{row.id} answered past {row.bound_s:g} s: {_brief(call)}")
        if total_s > row.bound_s + flush_s + BOUND_OVERHEAD_S:
            past.append(f"{row.id} returned past {row.bound_s + flush_s:g} s: {_brief(call)}")
    assert not past, past


@pytest.mark.parametrize("backend", ["redis", "qstash"])
def test_the_workers_scheduled_flush_keeps_to_the_cron_row(app: FaultyApp, backend: str) -> None:
    """With a job due and `backend` hanging, the Workers `scheduled` entry (the cron row's
    other half: the same flush, no HTTP) ends within the row's time and bound; with Redis
    hanging it fails with the Redis error (what the cron route answers 503 for)."""
    row = next(r for r in ROWS if r.id == "cron")
    status, measured_s = row.expected(backend)
    due = job_for(app, "ord_" + uuid.uuid4().hex[:22])
    redis_call(app, "HSET", OUTBOX_KEY, due.id, due.to_json())

    async def tick() -> tuple[float, BaseException | None]:
        transport = HttpxTransport()
        bundle = build_app(app.env, transport=transport)  # a Worker isolate of its own
        started = time.monotonic()
        try:
            await bundle.scheduled("*/5 * * * *")
            failure = None
        except UpstashError as exc:
            failure = exc
        finally:
            await transport.aclose()
        return time.monotonic() - started, failure

    {"redis": app.redis, "qstash": app.qstash}[backend].set_mode("hang")
    try:
        elapsed, failure = asyncio.run(tick())
    finally:
        app.reset()
        redis_call(app, "HDEL", OUTBOX_KEY, due.id)
    assert (failure is not None) == (status == 503), failure
    assert elapsed <= measured_s + SLACK_S, elapsed
    assert elapsed <= row.bound_s + BOUND_OVERHEAD_S, elapsed
