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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from shared.errors import QStashError, UpstashError
from shared.jobs.outbox_records import (
    DEAD_KEY,
    OUTBOX_KEY,
    REPLAY,
    SETTLE,
    Backoff,
    DeadJob,
    Job,
)
from shared.qstash import FlowControl, QStash
from shared.qstash.publish import is_permanent
from shared.redis import Redis, RetryPolicy

log = logging.getLogger(__name__)

PUBLISH_BUDGET_S = 2.0  # the request path: a 201 from the outbox beats a late answer
FLUSH_BUDGET_S = 5.0
MAX_SUBREQUESTS = 10  # per flush; the request that triggered it needs some of the 50 too
MAX_BATCH = 50
MIN_STEP_S = 0.25  # the least time a Redis step gets, even when QStash used up the budget
STUCK_FLUSH_S = 30.0  # a flush running this long is presumed dead (its isolate was killed)

DeadLetterHook = Callable[[DeadJob], None]
Replay = Literal["published", "queued", "dead"]

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


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class FlushReport:
    """`failed`: transient failures (and unreadable entries); `dead`: moved to dead letters;
    `remaining`: jobs left in the outbox (not due yet, retried later, or over the caps)."""

    published: int
    failed: int
    remaining: int
    dead: int = 0


@dataclass(slots=True)
class _Outcomes:
    """What one round of publishing decided, settled in one Redis call."""

    published: list[Job] = field(default_factory=list)
    retry: list[Job] = field(default_factory=list)
    dead: list[tuple[Job, QStashError]] = field(default_factory=list)
    calls: int = 0


class PublishAttempt:
    """One job's publish whose outbox bookkeeping is not written yet (`Outbox.publish_unsettled`).

    `outcome` is what QStash decided; `settle()` writes it (at most once, never raising).
    """

    __slots__ = ("_end", "_job", "_outbox", "_outcomes", "_settled")

    def __init__(self, outbox: Outbox, job: Job, outcomes: _Outcomes, end: float) -> None:
        self._outbox, self._job, self._outcomes, self._end = outbox, job, outcomes, end
        self._settled = False

    @property
    def outcome(self) -> Replay:
        if self._outcomes.published:
            return "published"
        return "dead" if self._outcomes.dead else "queued"

    async def settle(self) -> None:
        if self._settled:
            return
        self._settled = True
        await self._outbox._settle_attempt(self._job, self._outcomes, self._end)

    def settled_by_caller(self, ok: bool) -> None:
        """The caller removed the published job itself (`ok`), or failed to (then the next
        flush may publish it again, with the same deduplication id)."""
        self._settled = True
        self._outbox._in_flight.discard(self._job.id)
        if not ok:
            self._outbox.expect_now()


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
        self._qstash = qstash
        self._batch = batch
        self._forward = dict(forward_headers or {})
        # Every job sends an email today, so one flow-control key throttles them all
        # (EMAIL_SEND_RATE / EMAIL_SEND_PARALLELISM): QStash holds excess deliveries.
        self._flow_control = flow_control
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
        budget = self._publish_budget_s if budget_s is None else budget_s
        if budget <= MIN_STEP_S:
            raise ValueError(f"budget_s must be > {MIN_STEP_S} seconds")
        return await self._publish_now(job, budget) == "published"

    async def _publish_now(self, job: Job, budget: float) -> Replay:
        attempt = await self.publish_unsettled(job, budget_s=budget)
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
            outcomes = await self._publish_one(job, budget - MIN_STEP_S)
        except BaseException:
            self._in_flight.discard(job.id)
            raise
        return PublishAttempt(self, job, outcomes, end)

    async def _settle_attempt(self, job: Job, outcomes: _Outcomes, end: float) -> None:
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

    async def _publish_one(self, job: Job, deadline: float) -> _Outcomes:
        outcomes = _Outcomes(calls=1)
        try:
            await self._qstash.publish_json(
                job.url,
                job.body,
                retries=job.retries,
                delay=job.delay,
                deduplication_id=job.dedup_id,
                headers=self._forward,
                flow_control=self._flow_control,
                deadline=deadline,
            )
        except UpstashError as exc:
            self._failed(outcomes, job, exc)
        else:
            outcomes.published.append(job)
        return outcomes

    def _failed(self, outcomes: _Outcomes, job: Job, exc: UpstashError) -> None:
        if isinstance(exc, QStashError) and is_permanent(exc):
            log.error("QStash refused job %s permanently (HTTP %d)", job.id, exc.status)
            outcomes.dead.append((job, exc))
        else:
            log.warning("publish of job %s failed (%s); retried later", job.id, type(exc).__name__)
            outcomes.retry.append(job)

    async def _publish_many(self, jobs: Sequence[Job], end: float, calls: int) -> _Outcomes:
        """One `/v2/batch` request for several jobs. A batch QStash refuses as a whole may
        hold one bad job among good ones: then each is sent alone (within `calls`)."""
        loop = asyncio.get_running_loop()
        if len(jobs) == 1:
            return await self._publish_one(jobs[0], end - loop.time() - MIN_STEP_S)
        messages = [
            {
                "url": job.url,
                "body": job.body,
                "retries": job.retries,
                "delay": job.delay,
                "deduplication_id": job.dedup_id,
                "headers": self._forward,
                "flow_control": self._flow_control,
            }
            for job in jobs
        ]
        outcomes = _Outcomes(calls=1)
        try:
            await self._qstash.batch_json(messages, deadline=end - loop.time() - MIN_STEP_S)
        except UpstashError as exc:
            if not is_permanent(exc):
                log.warning("batch publish failed (%s); retried later", type(exc).__name__)
                outcomes.retry.extend(jobs)
                return outcomes
            for job in jobs:  # find the refused ones; the rest waits for the next flush
                left = end - loop.time() - MIN_STEP_S
                if outcomes.calls >= calls or left <= MIN_STEP_S:
                    break
                one = await self._publish_one(job, left)
                outcomes.calls += 1
                outcomes.published += one.published
                outcomes.retry += one.retry
                outcomes.dead += one.dead
        else:
            outcomes.published.extend(jobs)
        return outcomes

    async def _settle(self, outcomes: _Outcomes, stored: Mapping[str, str], left: float) -> None:
        """Writes every outcome in one script; reports the dead letters this call moved."""
        now = self._clock()
        retried = [job.after_failure(now, self._backoff) for job in outcomes.retry]
        dead = {job.id: DeadJob(job, exc.status, exc.message, now) for job, exc in outcomes.dead}
        if not (outcomes.published or retried or dead):
            return
        args: list[str | int] = [len(outcomes.published), *(j.id for j in outcomes.published)]
        args.append(len(retried))
        for job in retried:
            args += [job.id, stored[job.id], job.to_json()]
        args.append(len(dead))
        for job_id, letter in dead.items():
            args += [job_id, stored[job_id], letter.to_json()]
        for job in retried:
            self._expect(job.next_at_ms)
        moved = await SETTLE.run(self._view(left), [OUTBOX_KEY, DEAD_KEY], args)
        for job_id in moved or []:
            self._report(dead[_text(job_id)])

    def _report(self, letter: DeadJob) -> None:
        if self._on_dead_letter is None:
            return
        try:
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
        stored: dict[str, str] = {}
        jobs: list[Job] = []
        broken = 0
        for raw_field, raw in entries.items():
            name = _text(raw_field)
            try:
                job = Job.from_json(_text(raw))
            except (ValueError, KeyError, TypeError):
                log.error("outbox entry %s is not a job; left in place", name)
                broken += 1
                continue
            if job.id != name:  # the hash field is what the settle step updates
                job = replace(job, id=name)
            stored[name] = _text(raw)
            jobs.append(job)
        now = self._clock()
        # A job whose publish this process is settling (`publish_unsettled`) is left to it.
        busy = self._in_flight
        due = sorted(
            (j for j in jobs if j.due(now) and j.id not in busy), key=lambda j: (j.next_at_ms, j.id)
        )
        chosen = due[: self._batch]
        outcomes = _Outcomes()
        if chosen and end - loop.time() > 2 * MIN_STEP_S:
            # Kept back: the read, and the settle (two calls when Redis lost the script).
            outcomes = await self._publish_many(chosen, end, calls - 3)
        tried = {j.id for j in (*outcomes.published, *outcomes.retry)}
        tried.update(j.id for j, _ in outcomes.dead)
        self._next_due_ms = None
        for job in jobs:  # the earliest due time of what stays (retried ones: in _settle)
            if job.id not in tried and job.id not in busy:
                self._expect(job.next_at_ms)
        try:
            await self._settle(outcomes, stored, end - loop.time())
        except UpstashError as exc:
            self._expect(now)
            log.warning("outbox bookkeeping failed (%s)", type(exc).__name__)
        published, dead = len(outcomes.published), len(outcomes.dead)
        return FlushReport(
            published=published,
            failed=len(outcomes.retry) + broken,
            remaining=len(jobs) + broken - published - dead,
            dead=dead,
        )

    # -- dead letters --------------------------------------------------------------------

    async def dead_letters(self) -> list[DeadJob]:
        """Every dead letter, oldest first (unreadable entries are logged and skipped)."""
        letters: list[DeadJob] = []
        for job_id, raw in (await self._redis.hgetall(DEAD_KEY)).items():
            try:
                letters.append(DeadJob.from_json(_text(raw)))
            except (ValueError, KeyError, TypeError):
                log.error("dead letter %s is unreadable", _text(job_id))
        return sorted(letters, key=lambda d: (d.failed_at_ms, d.job.id))

    async def replay(self, job_id: str) -> Replay | None:
        """Moves a dead letter back into the outbox and publishes it now: "published",
        "queued" (failed transiently: the outbox retries it), "dead" (refused again), or
        None when there is no such dead letter."""
        raw = await self._redis.hget(DEAD_KEY, job_id)
        if raw is None:
            return None
        try:
            job = DeadJob.from_json(_text(raw)).job.fresh()
        except (ValueError, KeyError, TypeError):
            log.error("dead letter %s is unreadable; not replayed", job_id)
            return None
        if not await REPLAY.run(self._redis, [DEAD_KEY, OUTBOX_KEY], [job_id, raw, job.to_json()]):
            return None  # replayed or discarded meanwhile
        return await self._publish_now(job, self._publish_budget_s)

    async def discard(self, job_id: str) -> bool:
        """Deletes a dead letter for good; False when there was none."""
        return bool(await self._redis.hdel(DEAD_KEY, job_id))
