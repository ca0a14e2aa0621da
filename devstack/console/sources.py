"""What the console reads: the devstack's Redis (keys, QStash state, outbox), QStash's API
(DLQ, schedules), the email sink's API. Each read is bounded and failure-tolerant: a view
whose source is down says so instead of failing the page.

QStash state is read where the devstack QStash keeps it (`devstack.qstash.store.PREFIX`):
pending messages and the due time of their next attempt. The DLQ, its retry and delete go
through QStash's own HTTP API, as a developer's curl would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as aioredis

from devstack.qstash.store import PREFIX as QSTASH_PREFIX

MAX_KEYS = 2000
RATELIMIT_PREFIXES = ("@upstash/ratelimit:", "ratelimit:")
CACHE_PREFIX = "cache:"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key: str
    type: str
    ttl_ms: int  # -1 no expiry, -2 gone
    value: str = ""  # strings only, shortened


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """A QStash message still to be delivered (first attempt or a retry)."""

    id: str
    url: str
    kind: str
    retried: int
    max_retries: int
    next_attempt_ms: int | None
    in_flight: bool
    last_status: int
    created_ms: int


@dataclass(slots=True)
class Snapshot:
    """One read of everything a view may need; `errors` names the sources that failed."""

    keys: list[KeyInfo] = field(default_factory=list)
    pending: list[PendingMessage] = field(default_factory=list)
    dlq: list[dict[str, Any]] = field(default_factory=list)
    schedules: list[dict[str, Any]] | None = None
    flow_control: list[dict[str, Any]] | None = None
    events: list[dict[str, Any]] | None = None
    emails: list[dict[str, Any]] = field(default_factory=list)
    outbox: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class Sources:
    """Clients for the devstack's services; `close()` when the console stops."""

    def __init__(self, redis_url: str, qstash_url: str, qstash_token: str, email_url: str) -> None:
        self.redis: aioredis.Redis = aioredis.from_url(redis_url, decode_responses=True)
        self.qstash_url = qstash_url.rstrip("/")
        self.email_url = email_url.rstrip("/")
        self.http = httpx.AsyncClient(timeout=3.0)
        self._qstash_headers = {"Authorization": f"Bearer {qstash_token}"}

    async def close(self) -> None:
        await self.http.aclose()
        await self.redis.aclose()

    async def keys(self) -> list[KeyInfo]:
        """Every key (up to `MAX_KEYS`) with its type, TTL and, for strings, a short value."""
        names: list[str] = []
        async for name in self.redis.scan_iter(count=500):
            names.append(str(name))
            if len(names) >= MAX_KEYS:
                break
        names.sort()
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.type(name)
                pipe.pttl(name)
            meta = await pipe.execute()
        strings = [n for i, n in enumerate(names) if meta[2 * i] == "string"]
        values = dict(zip(strings, await self.redis.mget(strings), strict=True)) if strings else {}
        return [
            KeyInfo(name, str(meta[2 * i]), int(meta[2 * i + 1]), _shorten(values.get(name)))
            for i, name in enumerate(names)
        ]

    async def pending(self) -> list[PendingMessage]:
        p = QSTASH_PREFIX
        scored: Any = await self.redis.zrange(f"{p}due", 0, -1, withscores=True)
        due = {str(member): float(score) for member, score in scored}
        inflight = {str(m) for m in await self.redis.smembers(f"{p}inflight")}
        ids = list(due)
        texts = await self.redis.mget([f"{p}msg:{i}" for i in ids]) if ids else []
        found = []
        for message_id, text in zip(ids, texts, strict=True):
            if not text:
                continue
            data = json.loads(text)
            found.append(
                PendingMessage(
                    id=message_id,
                    url=str(data.get("url", "")),
                    kind=str(data.get("kind", "message")),
                    retried=int(data.get("retried", 0)),
                    max_retries=int(data.get("max_retries", 0)),
                    next_attempt_ms=None if message_id in inflight else int(due[message_id]),
                    in_flight=message_id in inflight,
                    last_status=int(data.get("last_status", 0)),
                    created_ms=int(data.get("created_at", 0)),
                )
            )
        return sorted(found, key=lambda m: m.created_ms, reverse=True)

    async def _qstash_get(self, path: str) -> Any:
        response = await self.http.get(self.qstash_url + path, headers=self._qstash_headers)
        if response.status_code == 404 and not path.startswith("/v2/dlq"):
            return None  # this QStash has no such endpoint (yet)
        response.raise_for_status()
        return response.json()

    async def dlq(self) -> list[dict[str, Any]]:
        answer = await self._qstash_get("/v2/dlq?count=100")
        messages: list[dict[str, Any]] = answer.get("messages", []) if answer else []
        return messages

    async def schedules(self) -> list[dict[str, Any]] | None:
        answer = await self._qstash_get("/v2/schedules")
        return answer if isinstance(answer, list) else None

    async def flow_control(self) -> list[dict[str, Any]] | None:
        answer = await self._qstash_get("/v2/flowControl")
        return answer if isinstance(answer, list) else None

    async def events(self) -> list[dict[str, Any]] | None:
        """QStash's message log (`GET /v2/events`, newest first) where the devstack offers it."""
        answer = await self._qstash_get("/v2/events?count=1000")
        if not isinstance(answer, dict) or not isinstance(answer.get("events"), list):
            return None
        return [e for e in answer["events"] if isinstance(e, dict)]

    async def dlq_retry(self, dlq_id: str) -> tuple[int, dict[str, Any]]:
        """QStash's own retry: (status, answer); the answer holds the new `messageId`."""
        url = f"{self.qstash_url}/v2/dlq/retry/{dlq_id}"
        response = await self.http.post(url, headers=self._qstash_headers)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        return response.status_code, answer if isinstance(answer, dict) else {}

    async def dlq_delete(self, dlq_id: str) -> int:
        url = f"{self.qstash_url}/v2/dlq/{dlq_id}"
        response = await self.http.delete(url, headers=self._qstash_headers)
        return response.status_code

    async def emails(self) -> list[dict[str, Any]]:
        response = await self.http.get(self.email_url + "/emails")
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json().get("data", [])
        return data

    async def outbox(self) -> dict[str, dict[str, Any]]:
        """Every `outbox:*` hash (pending jobs, and dead-lettered ones where the app keeps
        them), field -> parsed JSON job."""
        found: dict[str, dict[str, Any]] = {}
        async for name in self.redis.scan_iter(match="outbox:*", count=200):
            if await self.redis.type(name) != "hash":
                continue
            jobs: dict[str, Any] = {}
            for job_field, text in (await self.redis.hgetall(name)).items():
                try:
                    jobs[str(job_field)] = json.loads(text)
                except ValueError:
                    jobs[str(job_field)] = {"raw": _shorten(text)}
            found[str(name)] = jobs
        return found

    async def snapshot(self, *parts: str) -> Snapshot:
        """Reads the named parts (keys, pending, dlq, schedules, emails, outbox)."""
        snap = Snapshot()
        readers: dict[str, tuple[str, Callable[[], Awaitable[object]]]] = {
            "keys": ("Redis", self.keys),
            "pending": ("QStash store", self.pending),
            "dlq": ("QStash DLQ", self.dlq),
            "schedules": ("QStash schedules", self.schedules),
            "flow_control": ("QStash flow control", self.flow_control),
            "events": ("QStash logs", self.events),
            "emails": ("email sink", self.emails),
            "outbox": ("outbox", self.outbox),
        }
        for part in parts:
            label, read = readers[part]
            try:
                setattr(snap, part, await read())
            except Exception as exc:  # a source that is down: say so, keep the page
                snap.errors.append(f"{label}: {type(exc).__name__}")
        return snap


def _shorten(value: object, limit: int = 120) -> str:
    if value is None:
        return ""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def now_ms() -> int:
    return int(time.time() * 1000)
