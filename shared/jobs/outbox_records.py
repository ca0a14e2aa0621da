"""What the outbox keeps in Redis: jobs with their retry state, dead letters, and the scripts
that change them atomically, read and written here. Storage only: the queue's policy lives in
`outbox.py`, publishing in `outbox_publish.py`.

    outbox:jobs   hash  job id -> Job JSON (with `attempts` and `next_at_ms`)
    outbox:dead   hash  job id -> DeadJob JSON (the job, QStash's status and message)

Neither key has a TTL: each exists only while it holds entries. Nothing in them grants
access (a job carries the order id and the request id, never a token or an address).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from shared.redis import Redis, Script

log = logging.getLogger(__name__)

OUTBOX_KEY = "outbox:jobs"
DEAD_KEY = "outbox:dead"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds before attempt n+1 after n failed ones: `base_s * 2**(n-1)`, at most `cap_s`."""

    base_s: float = 10.0
    cap_s: float = 15 * 60.0

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.cap_s:
            raise ValueError("Backoff needs 0 < base_s <= cap_s")

    def delay_ms(self, attempts: int) -> int:
        exponent = min(max(attempts - 1, 0), 32)
        return int(min(self.cap_s, self.base_s * 2**exponent) * 1000)


@dataclass(frozen=True, slots=True)
class Job:
    """A message to publish: `dedup_id` makes re-publishing safe; `attempts` failed publishes
    so far and `next_at_ms` (unix ms, 0: now) when the next one is due."""

    id: str
    url: str
    body: dict[str, Any]
    dedup_id: str
    retries: int = 3
    delay: str = "2s"
    attempts: int = 0
    next_at_ms: int = 0

    def due(self, now_ms: int) -> bool:
        return self.next_at_ms <= now_ms

    def after_failure(self, now_ms: int, backoff: Backoff) -> Job:
        """This job with one more failed attempt, due again after the backoff."""
        attempts = self.attempts + 1
        return replace(self, attempts=attempts, next_at_ms=now_ms + backoff.delay_ms(attempts))

    def fresh(self) -> Job:
        """This job as if never tried (a replayed dead letter)."""
        return replace(self, attempts=0, next_at_ms=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "body": self.body,
            "dedup_id": self.dedup_id,
            "retries": self.retries,
            "delay": self.delay,
            "attempts": self.attempts,
            "next_at_ms": self.next_at_ms,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> Job:
        """Reads any version of the record: jobs written before retry state start at 0."""
        if not isinstance(data, dict):
            raise TypeError("a job is a JSON object")
        return cls(
            id=str(data["id"]),
            url=str(data["url"]),
            body=dict(data["body"]),
            dedup_id=str(data["dedup_id"]),
            retries=int(data.get("retries", 3)),
            delay=str(data.get("delay", "2s")),
            attempts=int(data.get("attempts", 0)),
            next_at_ms=int(data.get("next_at_ms", 0)),
        )

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True, slots=True)
class DeadJob:
    """A job QStash refused permanently: `status` and `error` are QStash's answer."""

    job: Job
    status: int
    error: str
    failed_at_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job.to_dict(),
            "status": self.status,
            "error": self.error,
            "failed_at_ms": self.failed_at_ms,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> DeadJob:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("a dead letter is a JSON object")
        return cls(
            job=Job.from_dict(data["job"]),
            status=int(data["status"]),
            error=str(data["error"]),
            failed_at_ms=int(data["failed_at_ms"]),
        )


# KEYS: outbox hash, dead-letter hash
# ARGV: n, n published ids; m, m x (id, stored json, json with the next attempt);
#       k, k x (id, stored json, dead-letter json)
# A job is rescheduled or moved only if it is still stored as read (a concurrent flush may
# have settled it already), so each dead letter is moved, and reported, once. Returns the ids
# moved to the dead-letter hash.
SETTLE = Script(
    """
local i = 1
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HDEL', KEYS[1], ARGV[i]); i = i + 1 end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
  end
  i = i + 3
end
local moved = {}
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
    moved[#moved + 1] = ARGV[i]
  end
  i = i + 3
end
return moved
"""
)

# KEYS: dead-letter hash, outbox hash
# ARGV: job id, dead-letter json as read, fresh job json
# Moves a dead letter back into the outbox unless it changed meanwhile; returns 1 or 0.
REPLAY = Script(
    """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""
)


def as_text(value: object) -> str:
    """A hash field or value as Redis returned it (bytes or str) as text."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class OutboxEntries:
    """The outbox hash as read: `stored` JSON by job id (what SETTLE compares), the `jobs`,
    and how many entries were `broken` (not jobs: logged and left in place)."""

    stored: dict[str, str]
    jobs: list[Job]
    broken: int

    @classmethod
    def parse(cls, entries: Mapping[Any, Any]) -> OutboxEntries:
        stored: dict[str, str] = {}
        jobs: list[Job] = []
        broken = 0
        for raw_field, raw in entries.items():
            name = as_text(raw_field)
            try:
                job = Job.from_json(as_text(raw))
            except (ValueError, KeyError, TypeError):
                log.error("outbox entry %s is not a job; left in place", name)
                broken += 1
                continue
            if job.id != name:  # the hash field is what the settle step updates
                job = replace(job, id=name)
            stored[name] = as_text(raw)
            jobs.append(job)
        return cls(stored, jobs, broken)


def settle_args(
    published: Sequence[Job],
    retried: Sequence[Job],
    dead: Mapping[str, DeadJob],
    stored: Mapping[str, str],
) -> list[str | int]:
    """SETTLE's ARGV: `retried` are the jobs with their next attempt, `stored` the JSON read."""
    args: list[str | int] = [len(published), *(j.id for j in published)]
    args.append(len(retried))
    for job in retried:
        args += [job.id, stored[job.id], job.to_json()]
    args.append(len(dead))
    for job_id, letter in dead.items():
        args += [job_id, stored[job_id], letter.to_json()]
    return args


async def read_dead_letters(redis: Redis[Any]) -> list[DeadJob]:
    """Every dead letter, oldest first (unreadable entries are logged and skipped)."""
    letters: list[DeadJob] = []
    for job_id, raw in (await redis.hgetall(DEAD_KEY)).items():
        try:
            letters.append(DeadJob.from_json(as_text(raw)))
        except (ValueError, KeyError, TypeError):
            log.error("dead letter %s is unreadable", as_text(job_id))
    return sorted(letters, key=lambda d: (d.failed_at_ms, d.job.id))


async def revive(redis: Redis[Any], job_id: str) -> Job | None:
    """Moves a dead letter back into the outbox as a fresh job and returns it; None when there
    is none, it is unreadable, or it was replayed or discarded meanwhile."""
    raw = await redis.hget(DEAD_KEY, job_id)
    if raw is None:
        return None
    try:
        job = DeadJob.from_json(as_text(raw)).job.fresh()
    except (ValueError, KeyError, TypeError):
        log.error("dead letter %s is unreadable; not replayed", job_id)
        return None
    if not await REPLAY.run(redis, [DEAD_KEY, OUTBOX_KEY], [job_id, raw, job.to_json()]):
        return None
    return job
