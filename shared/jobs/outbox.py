"""The transactional outbox: jobs written with the data that needs them, published later.

An order and its confirmation job are stored in one Redis transaction; the job is
then published to QStash and removed from the outbox. If QStash cannot be reached
(or the process dies first), the job stays here and a later flush publishes it
with the same deduplication id, so QStash delivers it once.

`forward_headers` are added to every publish, the flushed ones included, and
QStash forwards them to the destination (`Upstash-Forward-<Name>`): this is how
the Vercel Deployment Protection bypass secret reaches protected previews. They
are configuration, never written to Redis or logged.

`outbox:jobs` is the one key the app writes without a TTL: it exists only while
it holds jobs (removing the last field deletes the hash).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import UpstashError
from shared.qstash import FlowControl, QStash
from shared.redis import Redis

log = logging.getLogger(__name__)

OUTBOX_KEY = "outbox:jobs"


@dataclass(frozen=True, slots=True)
class Job:
    """A message to publish: `dedup_id` makes re-publishing safe."""

    id: str
    url: str
    body: dict[str, Any]
    dedup_id: str
    retries: int = 3
    delay: str = "2s"

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "url": self.url,
                "body": self.body,
                "dedup_id": self.dedup_id,
                "retries": self.retries,
                "delay": self.delay,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        return cls(
            id=str(data["id"]),
            url=str(data["url"]),
            body=dict(data["body"]),
            dedup_id=str(data["dedup_id"]),
            retries=int(data.get("retries", 3)),
            delay=str(data.get("delay", "2s")),
        )


@dataclass(frozen=True, slots=True)
class FlushReport:
    published: int
    failed: int
    remaining: int


class Outbox:
    """Publishes outbox jobs; `maybe_pending` tells the app when a flush is worth a try."""

    def __init__(
        self,
        redis: Redis[Any],
        qstash: QStash,
        *,
        batch: int = 50,
        forward_headers: Mapping[str, str] | None = None,
        flow_control: FlowControl | None = None,
    ) -> None:
        self._redis = redis
        self._qstash = qstash
        self._batch = batch
        self._forward = dict(forward_headers or {})
        # Every job sends an email today, so one flow-control key throttles them all
        # (EMAIL_SEND_RATE / EMAIL_SEND_PARALLELISM): QStash holds excess deliveries.
        self._flow_control = flow_control
        # True at start (a previous process may have died with jobs left) and after a
        # failed publish; False once a flush leaves the outbox empty.
        self.maybe_pending = True
        self._flushing_since: float | None = None

    async def publish(self, job: Job) -> bool:
        """Publishes one job and removes it from the outbox; False (job kept) on failure."""
        try:
            await self._qstash.publish_json(
                job.url,
                job.body,
                retries=job.retries,
                delay=job.delay,
                deduplication_id=job.dedup_id,
                headers=self._forward,
                flow_control=self._flow_control,
            )
        except UpstashError as exc:
            self.maybe_pending = True
            log.warning(
                "publish of job %s failed (%s); kept in the outbox", job.id, type(exc).__name__
            )
            return False
        try:
            await self._redis.hdel(OUTBOX_KEY, job.id)
        except UpstashError:
            # Published but still listed: the next flush re-publishes with the same
            # deduplication id, which QStash answers as a duplicate.
            self.maybe_pending = True
        return True

    def should_flush(self) -> bool:
        """True when a flush may find work and none started in the last 30 s."""
        if not self.maybe_pending:
            return False
        started = self._flushing_since
        return started is None or time.monotonic() - started > 30

    async def flush(self) -> FlushReport:
        """Publishes every job left in the outbox (up to `batch` per call)."""
        self._flushing_since = time.monotonic()
        try:
            entries = await self._redis.hgetall(OUTBOX_KEY)
            published = failed = 0
            for _, raw in list(entries.items())[: self._batch]:
                try:
                    job = Job.from_json(raw)
                except (ValueError, KeyError, TypeError):
                    log.error("outbox entry is not a job; left in place for inspection")
                    failed += 1
                    continue
                if await self.publish(job):
                    published += 1
                else:
                    failed += 1
            remaining = len(entries) - published
            if remaining == 0:
                self.maybe_pending = False
            return FlushReport(published, failed, remaining)
        finally:
            self._flushing_since = None
