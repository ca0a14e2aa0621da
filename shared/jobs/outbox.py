"""The transactional outbox: jobs written with the data that needs them, published later.

An order and its confirmation job are stored in one Redis transaction; the job is
then published to QStash and removed from the outbox. If QStash cannot be reached
(or the process dies first), the job stays here and a later flush publishes it
with the same deduplication id, so QStash delivers it once.

The outbox is a queue, not a loop:
- every publish is bounded: the request path's by `publish_budget_s` (2 s, QStash and
  the bookkeeping write together), a flush by `flush_budget_s` (5 s) and by
  `max_subrequests` Redis + QStash calls (Workers Free allows 50 per invocation);
- a job that fails transiently (timeout, 5xx, 429) gets `attempts + 1` and a
  `next_at_ms` after an exponential backoff (10 s doubling, at most 15 min); nothing
  tries it before then;
- a job QStash refuses permanently (a 4xx such as a bad token or destination) moves to
  the dead-letter hash `outbox:dead` at once, is reported once through `on_dead_letter`,
  and waits there for `replay` or `discard` (the app's authenticated admin routes);
- a flush reads the outbox once, publishes the due jobs in one `/v2/batch` request and
  settles every outcome in one script: 3 subrequests in the common case (4 when Redis
  lost the script and it is sent again with EVAL).

`forward_headers` are added to every publish, the flushed ones included, and
QStash forwards them to the destination (`Upstash-Forward-<Name>`): this is how
the Vercel Deployment Protection bypass secret reaches protected previews. They
are configuration, never written to Redis or logged.

This module is the queue's policy; `outbox_records` its storage, `outbox_publish` the QStash side.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from shared.errors import UpstashError
from shared.jobs.outbox_publish import MIN_STEP_S, Outcomes, PublishAttempt, Publisher, Replay
from shared.jobs.outbox_records import (
    DEAD_KEY,
    OUTBOX_KEY,
    SETTLE,
    Backoff,
    DeadJob,
    Job,
    OutboxEntries,
    as_text,
    read_dead_letters,
    revive,
    settle_args,
)
from shared.qstash import FlowControl, QStash
from shared.redis import Redis, RetryPolicy

log = logging.getLogger(__name__)

PUBLISH_BUDGET_S = 2.0  # the request path: a 201 from the outbox beats a late answer
FLUSH_BUDGET_S = 5.0
MAX_SUBREQUESTS = 10  # per flush; the request that triggered it needs some of the 50 too
MAX_BATCH = 50
STUCK_FLUSH_S = 30.0  # a flush running this long is presumed dead (its isolate was killed)

DeadLetterHook = Callable[[DeadJob], None]

__all__ = [
    "DEAD_KEY",
    "OUTBOX_KEY",
    "Backoff",
    "DeadJob",
    "DeadLetterHook",
    "FlushReport",
    "Job",
    "Outbox",
    "PublishAttempt",
]


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class FlushReport:
    """`failed`: transient failures (and unreadable entries); `dead`: moved to dead letters;
    `remaining`: jobs left in the outbox (not due yet, retried later, or over the caps)."""

    published: int
    failed: int
    remaining: int
    dead: int = 0


class Outbox:
    """Publishes outbox jobs; `should_flush` tells the app when a flush may find due work."""

    def __init__(
        self,
        redis: Redis[Any],
        qstash: QStash,
        *,
        batch: int = MAX_BATCH,
        forward_headers: Mapping[str, str] | None = None,
        flow_control: FlowControl | None = None,
        publish_budget_s: float = PUBLISH_BUDGET_S,
        flush_budget_s: float = FLUSH_BUDGET_S,
        max_subrequests: int = MAX_SUBREQUESTS,
        backoff: Backoff | None = None,
        on_dead_letter: DeadLetterHook | None = None,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        if not 1 <= batch <= 100:
            raise ValueError("batch must be between 1 and 100 (QStash's batch size)")
        if publish_budget_s <= MIN_STEP_S or flush_budget_s <= 2 * MIN_STEP_S:
            raise ValueError("publish and flush budgets must leave time for QStash and Redis")
        if max_subrequests < 4:
            raise ValueError("max_subrequests must be >= 4 (read, publish, settle, EVAL)")
        self._redis = redis
        self._publisher = Publisher(qstash, forward_headers or {}, flow_control)
        self._batch = batch
        self._publish_budget_s = publish_budget_s
        self._flush_budget_s = flush_budget_s
        self._max_subrequests = max_subrequests
        self._backoff = backoff or Backoff()
        self._on_dead_letter = on_dead_letter
        self._clock = clock_ms
        # Unix ms from which a flush may find a due job; None: the outbox is known empty.
        # 0 at start: a previous process may have died with jobs left.
        self._next_due_ms: int | None = 0
        self._flushing_since: float | None = None
        # Jobs published by `publish_unsettled` whose bookkeeping is not written yet.
        self._in_flight: set[str] = set()

    def should_flush(self) -> bool:
        """True when a job may be due and no flush is running (or one got stuck)."""
        due = self._next_due_ms
        if due is None or due > self._clock():
            return False
        started = self._flushing_since
        return started is None or time.monotonic() - started > STUCK_FLUSH_S

    def expect_now(self) -> None:
        """A job may be due now (a caller's bookkeeping failed): the next check flushes."""
        self._expect(self._clock())

    def _expect(self, at_ms: int) -> None:
        due = self._next_due_ms
        self._next_due_ms = at_ms if due is None else min(due, at_ms)

    def _view(self, seconds: float) -> Redis[Any]:
        """The Redis client bounded by what is left of a budget (no retry past it)."""
        timeout = max(MIN_STEP_S, min(self._redis.timeout, seconds))
        return self._redis.with_options(
            timeout=timeout, retry=RetryPolicy.never(), total_timeout=True
        )

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, job: Job, *, budget_s: float | None = None) -> bool:
        """Publishes one job and removes it from the outbox, within `budget_s` in total
        (QStash and the bookkeeping write); False when the job stays in the outbox for a
        later flush (transient failure) or moved to the dead letters (permanent one)."""
        return await self._publish_now(job, budget_s) == "published"

    async def _publish_now(self, job: Job, budget_s: float | None) -> Replay:
        attempt = await self.publish_unsettled(job, budget_s=budget_s)
        await attempt.settle()
        return attempt.outcome

    async def publish_unsettled(self, job: Job, *, budget_s: float | None = None) -> PublishAttempt:
        """Publishes one job to QStash and leaves its bookkeeping to `attempt.settle()`
        (removal, new schedule or dead letter, within what is left of `budget_s`), which a
        caller may run after its answer. `publish` is this followed by `settle()`."""
        budget = self._publish_budget_s if budget_s is None else budget_s
        if budget <= MIN_STEP_S:
            raise ValueError(f"budget_s must be > {MIN_STEP_S} seconds")
        loop = asyncio.get_running_loop()
        end = loop.time() + budget
        self._in_flight.add(job.id)
        try:
            outcomes = await self._publisher.one(job, budget - MIN_STEP_S)
        except BaseException:
            self._in_flight.discard(job.id)
            raise
        settle = partial(self._settle_attempt, job, outcomes, end)
        return PublishAttempt(outcomes, settle, partial(self._release, job.id))

    def _release(self, job_id: str, ok: bool) -> None:
        self._in_flight.discard(job_id)
        if not ok:
            self.expect_now()

    async def _settle_attempt(self, job: Job, outcomes: Outcomes, end: float) -> None:
        left = end - asyncio.get_running_loop().time()
        try:
            await self._settle(outcomes, {job.id: job.to_json()}, max(left, MIN_STEP_S))
        except UpstashError as exc:
            # Published but still listed (or not rescheduled): the next flush re-publishes
            # with the same deduplication id, which QStash answers as a duplicate.
            self._expect(self._clock())
            log.warning("outbox bookkeeping for job %s failed (%s)", job.id, type(exc).__name__)
        finally:
            self._in_flight.discard(job.id)

    async def _settle(self, outcomes: Outcomes, stored: Mapping[str, str], left: float) -> None:
        """Writes every outcome in one script; reports the dead letters this call moved."""
        now = self._clock()
        retried = [job.after_failure(now, self._backoff) for job in outcomes.retry]
        dead = {job.id: DeadJob(job, exc.status, exc.message, now) for job, exc in outcomes.dead}
        if not (outcomes.published or retried or dead):
            return
        args = settle_args(outcomes.published, retried, dead, stored)
        for job in retried:
            self._expect(job.next_at_ms)
        moved = await SETTLE.run(self._view(left), [OUTBOX_KEY, DEAD_KEY], args)
        for job_id in moved or []:
            self._report(dead[as_text(job_id)])

    def _report(self, letter: DeadJob) -> None:
        try:
            if self._on_dead_letter is not None:
                self._on_dead_letter(letter)
        except Exception:  # a broken hook must not break the flush
            log.exception("dead-letter hook failed for job %s", letter.job.id)

    # -- flushing ------------------------------------------------------------------------

    async def flush(
        self, *, budget_s: float | None = None, max_subrequests: int | None = None
    ) -> FlushReport:
        """Publishes the due jobs (up to `batch`), within `budget_s` and `max_subrequests`."""
        budget = self._flush_budget_s if budget_s is None else budget_s
        calls = self._max_subrequests if max_subrequests is None else max_subrequests
        if budget <= 2 * MIN_STEP_S or calls < 4:
            raise ValueError("a flush needs > 0.5 s and at least 4 subrequests")
        self._flushing_since = time.monotonic()
        try:
            return await self._flush(budget, calls)
        finally:
            self._flushing_since = None

    async def _flush(self, budget: float, calls: int) -> FlushReport:
        loop = asyncio.get_running_loop()
        end = loop.time() + budget
        try:
            entries = await self._view(budget - 2 * MIN_STEP_S).hgetall(OUTBOX_KEY)
        except UpstashError:
            self._next_due_ms = self._clock() + self._backoff.delay_ms(1)
            raise
        read = OutboxEntries.parse(entries)
        now = self._clock()
        # A job whose publish this process is settling (`publish_unsettled`) is left to it.
        busy = self._in_flight
        waiting = [j for j in read.jobs if j.due(now) and j.id not in busy]
        chosen = sorted(waiting, key=lambda j: (j.next_at_ms, j.id))[: self._batch]
        outcomes = Outcomes()
        if chosen and end - loop.time() > 2 * MIN_STEP_S:
            # Kept back: the read, and the settle (two calls when Redis lost the script).
            outcomes = await self._publisher.many(chosen, end, calls - 3)
        tried = outcomes.tried()
        self._next_due_ms = None
        for job in read.jobs:  # the earliest due time of what stays (retried ones: in _settle)
            if job.id not in tried and job.id not in busy:
                self._expect(job.next_at_ms)
        try:
            await self._settle(outcomes, read.stored, end - loop.time())
        except UpstashError as exc:
            self._expect(now)
            log.warning("outbox bookkeeping failed (%s)", type(exc).__name__)
        published, dead = len(outcomes.published), len(outcomes.dead)
        return FlushReport(
            published=published,
            failed=len(outcomes.retry) + read.broken,
            remaining=len(read.jobs) + read.broken - published - dead,
            dead=dead,
        )

    # -- dead letters --------------------------------------------------------------------

    async def dead_letters(self) -> list[DeadJob]:
        """Every dead letter, oldest first (unreadable entries are logged and skipped)."""
        return await read_dead_letters(self._redis)

    async def replay(self, job_id: str) -> Replay | None:
        """Moves a dead letter back into the outbox and publishes it now: "published",
        "queued" (failed transiently: the outbox retries it), "dead" (refused again), or
        None when there is no such dead letter (or it was replayed or discarded meanwhile)."""
        job = await revive(self._redis, job_id)
        if job is None:
            return None
        return await self._publish_now(job, None)

    async def discard(self, job_id: str) -> bool:
        """Deletes a dead letter for good; False when there was none."""
        return bool(await self._redis.hdel(DEAD_KEY, job_id))
