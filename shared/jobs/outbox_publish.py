"""Publishing outbox jobs to QStash: one job, or several in one `/v2/batch` request, each
outcome sorted into published, retried later (a transient failure) or dead (a refusal).

No Redis and no schedule: what the outcomes do to the queue (removal, backoff, dead letter)
is the settle step in `outbox.py`. `forward_headers` are configuration, never logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.errors import QStashError, UpstashError
from shared.jobs.outbox_records import Job
from shared.qstash import FlowControl, QStash
from shared.qstash.publish import is_permanent

log = logging.getLogger(__name__)

MIN_STEP_S = 0.25  # the least time a Redis step gets, even when QStash used up the budget

Replay = Literal["published", "queued", "dead"]


@dataclass(slots=True)
class Outcomes:
    """What one round of publishing decided, settled in one Redis call; `calls`: the QStash
    requests it took."""

    published: list[Job] = field(default_factory=list)
    retry: list[Job] = field(default_factory=list)
    dead: list[tuple[Job, QStashError]] = field(default_factory=list)
    calls: int = 0

    def tried(self) -> set[str]:
        """The ids of every job with an outcome (the rest was not sent)."""
        ids = {j.id for j in (*self.published, *self.retry)}
        ids.update(j.id for j, _ in self.dead)
        return ids


class PublishAttempt:
    """One job's publish whose outbox bookkeeping is not written yet (`Outbox.publish_unsettled`).

    `outcome` is what QStash decided; `settle()` writes it (at most once, never raising).
    """

    __slots__ = ("_outcomes", "_release", "_settle", "_settled")

    def __init__(
        self,
        outcomes: Outcomes,
        settle: Callable[[], Awaitable[None]],
        release: Callable[[bool], None],
    ) -> None:
        self._outcomes, self._settle, self._release = outcomes, settle, release
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
        await self._settle()

    def settled_by_caller(self, ok: bool) -> None:
        """The caller removed the published job itself (`ok`), or failed to (then the next
        flush may publish it again, with the same deduplication id)."""
        self._settled = True
        self._release(ok)


class Publisher:
    """Sends jobs to QStash with the outbox's forwarded headers and flow-control key."""

    __slots__ = ("_flow_control", "_forward", "_qstash")

    def __init__(
        self, qstash: QStash, forward_headers: Mapping[str, str], flow_control: FlowControl | None
    ) -> None:
        self._qstash = qstash
        self._forward = dict(forward_headers)
        # Every job sends an email today, so one flow-control key throttles them all
        # (EMAIL_SEND_RATE / EMAIL_SEND_PARALLELISM): QStash holds excess deliveries.
        self._flow_control = flow_control

    async def one(self, job: Job, deadline: float) -> Outcomes:
        """Publishes one job within `deadline` seconds (one QStash request)."""
        outcomes = Outcomes(calls=1)
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
            _failed(outcomes, job, exc)
        else:
            outcomes.published.append(job)
        return outcomes

    async def many(self, jobs: Sequence[Job], end: float, calls: int) -> Outcomes:
        """One `/v2/batch` request for several jobs, done by the loop time `end` (less a Redis
        step). A batch QStash refuses as a whole may hold one bad job among good ones: then
        each is sent alone (within `calls` requests in all)."""
        loop = asyncio.get_running_loop()
        if len(jobs) == 1:
            return await self.one(jobs[0], end - loop.time() - MIN_STEP_S)
        messages = [self._message(job) for job in jobs]
        outcomes = Outcomes(calls=1)
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
                one = await self.one(job, left)
                outcomes.calls += 1
                outcomes.published += one.published
                outcomes.retry += one.retry
                outcomes.dead += one.dead
        else:
            outcomes.published.extend(jobs)
        return outcomes

    def _message(self, job: Job) -> dict[str, Any]:
        return {
            "url": job.url,
            "body": job.body,
            "retries": job.retries,
            "delay": job.delay,
            "deduplication_id": job.dedup_id,
            "headers": self._forward,
            "flow_control": self._flow_control,
        }


def _failed(outcomes: Outcomes, job: Job, exc: UpstashError) -> None:
    if isinstance(exc, QStashError) and is_permanent(exc):
        log.error("QStash refused job %s permanently (HTTP %d)", job.id, exc.status)
        outcomes.dead.append((job, exc))
    else:
        log.warning("publish of job %s failed (%s); retried later", job.id, type(exc).__name__)
        outcomes.retry.append(job)
