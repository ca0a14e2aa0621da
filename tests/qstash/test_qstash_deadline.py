"""The QStash client's total deadline per call (retries included), which errors are permanent,
and the outbox's stored records (legacy jobs, backoff), on small fakes."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from shared.errors import QStashError, QStashRateLimited, TransportError, TransportTimeout
from shared.http.transport import HttpRequest, HttpResponse
from shared.jobs.outbox import Backoff, DeadJob, Job
from shared.qstash import QStash, QStashAdmin
from shared.qstash.publish import is_permanent

DEST = "https://app.example.com/api/jobs/send-confirmation"


class Hanging:
    """Accepts every request and never answers (a server that took the connection)."""

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.sent += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class SlowFailures:
    """Each attempt fails after `seconds` (a reset after a long wait): retries add up."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.sent = 0

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.sent += 1
        await asyncio.sleep(self.seconds)
        raise TransportError("connection reset")


async def test_a_hanging_server_costs_the_deadline_once() -> None:
    """A deduplicated publish to a server that never answers fails with TransportTimeout after
    the client's deadline, not attempts x the deadline."""
    hanging = Hanging()
    qstash = QStash("tok", url="http://q.local", transport=hanging, deadline=0.3)
    started = time.monotonic()
    with pytest.raises(TransportTimeout):
        await qstash.publish_json(DEST, {"n": 1}, deduplication_id="d1")
    assert time.monotonic() - started < 1.5 and hanging.sent == 1


async def test_retries_stay_inside_the_deadline() -> None:
    """Slow failures are retried only while the whole call is inside its deadline."""
    slow = SlowFailures(0.2)
    qstash = QStash("tok", url="http://q.local", transport=slow, deadline=0.5, retry_attempts=10)
    started = time.monotonic()
    with pytest.raises(TransportTimeout):
        await qstash.publish_json(DEST, {}, deduplication_id="d2")
    assert time.monotonic() - started < 1.5 and 2 <= slow.sent <= 3


async def test_per_call_deadline_overrides_the_default() -> None:
    """`deadline=` on one call (publish and batch) wins over the client's 10 s default."""
    qstash = QStash("tok", url="http://q.local", transport=Hanging())
    assert qstash.deadline == 10.0
    started = time.monotonic()
    with pytest.raises(TransportTimeout):
        await qstash.publish_json(DEST, {}, deduplication_id="d3", deadline=0.2)
    with pytest.raises(TransportTimeout):
        await qstash.batch_json([{"url": DEST, "deduplication_id": "d4"}], deadline=0.2)
    assert time.monotonic() - started < 2.0
    with pytest.raises(ValueError):
        await qstash.publish_json(DEST, {}, deadline=0)
    with pytest.raises(ValueError):
        QStash("tok", url="http://q.local", transport=Hanging(), deadline=-1)


async def test_management_calls_are_sent_under_the_clients_deadline() -> None:
    """A management call to a server that never answers ends at the admin client's deadline
    (the builders set no timeout of their own that could outlast it)."""
    hanging = Hanging()
    admin = QStashAdmin("tok", url="http://q.local", transport=hanging, deadline=0.3)
    started = time.monotonic()
    with pytest.raises(TransportTimeout):
        await admin.list_schedules()
    with pytest.raises(TransportTimeout):
        await admin.retry_dlq("dlq_1")
    assert time.monotonic() - started < 2.0 and hanging.sent == 2


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (QStashError(400, "invalid destination"), True),
        (QStashError(401, "invalid token"), True),
        (QStashError(403, "forbidden"), True),
        (QStashError(404, "not found"), True),
        (QStashError(408, "timeout"), False),
        (QStashRateLimited(429, "daily quota", {}), False),
        (QStashError(500, "internal"), False),
        (QStashError(200, "response has no messageId"), False),
        (TransportTimeout("timed out"), False),
    ],
)
def test_which_refusals_are_permanent(error: Exception, permanent: bool) -> None:
    """A 4xx other than 408/429 is permanent; transport errors, 5xx and 429 are transient."""
    assert is_permanent(error) is permanent


def test_a_job_stored_before_retry_state_reads_as_never_tried() -> None:
    """Old outbox JSON without attempts or next_at_ms is due now with 0 attempts."""
    old = {"id": "ord_1", "url": DEST, "body": {"orderId": "ord_1"}, "dedup_id": "confirm-ord_1"}
    job = Job.from_json(json.dumps(old))
    assert (job.attempts, job.next_at_ms, job.retries, job.delay) == (0, 0, 3, "2s")
    assert job.due(0) and Job.from_json(job.to_json()) == job


def test_backoff_doubles_up_to_its_cap() -> None:
    """10 s, 20 s, 40 s ... never more than 15 min; each failure moves next_at_ms forward."""
    backoff = Backoff()
    assert [backoff.delay_ms(n) for n in (1, 2, 3)] == [10_000, 20_000, 40_000]
    assert backoff.delay_ms(50) == 900_000
    job = Job("ord_1", DEST, {}, "d").after_failure(1_000, backoff).after_failure(2_000, backoff)
    assert (job.attempts, job.next_at_ms) == (2, 22_000)
    assert not job.due(21_999) and job.due(22_000) and job.fresh().due(0)


def test_dead_letter_round_trips() -> None:
    """A dead letter keeps the job, QStash's status and message, and when it failed."""
    letter = DeadJob(Job("ord_1", DEST, {"orderId": "ord_1"}, "d", attempts=2), 401, "bad", 7)
    assert DeadJob.from_json(letter.to_json()) == letter
