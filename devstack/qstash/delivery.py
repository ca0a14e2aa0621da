"""The scheduler: picks due messages from Redis, delivers them signed, retries, DLQs, calls back.

Every wait QStash defines in seconds (default backoff, `Upstash-Retry-Delay`,
`Retry-After`, `Upstash-Delay`) is multiplied by `time_scale` (devstack only), so
a test with `time_scale=0.001` sees the real schedule 1000 times faster. JWT
times, the dedup window and HTTP timeouts stay in real time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from croniter import croniter

from devstack.qstash.model import Message, next_wait_s
from devstack.qstash.store import QStashStore
from shared.qstash.signing import delivery_claims, sign_jwt

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
MAX_PARALLEL = 64
MAX_POLL_S = 0.5
SCAN_LIMIT = 1000  # due messages looked at per tick (flow control may hold some back)
USER_AGENT = "Upstash-QStash"


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def next_cron_ms(cron: str, after_ms: int) -> int:
    """The first tick of `cron` after `after_ms` (unix ms); `CRON_TZ=<zone> ` prefix honoured.

    `ValueError` for an expression croniter rejects.
    """
    zone = ZoneInfo("UTC")
    expression = cron.strip()
    if expression.startswith("CRON_TZ="):
        name, _, expression = expression.partition(" ")
        try:
            zone = ZoneInfo(name[len("CRON_TZ=") :])
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone in {name!r}") from exc
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ValueError(f"invalid cron expression {cron!r}")
    start = datetime.fromtimestamp(after_ms / 1000, zone)
    following = croniter(expression, start).get_next(datetime)
    return int(following.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt's result: `status` 0 means no HTTP response (refused, timeout)."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str:
        """How the attempt failed, for the log."""
        return f"HTTP {self.status}" if self.status else "no response (refused or timed out)"

    @property
    def non_retryable(self) -> bool:
        flag = self.headers.get("upstash-nonretryable-error", "").lower() == "true"
        return self.status == 489 and flag


def following_run(
    cron: str, *, virtual: int, real: int, now: int, time_scale: float
) -> tuple[int, int]:
    """The run after the one due at `real` (cron time `virtual`): (its cron time, its real time).

    Cron time advances tick by tick; real time by the same intervals times `time_scale`, from
    the due time (not from when it fired, so runs do not drift). Runs missed while the
    devstack was down are skipped: the next one is the first still ahead of `now`.
    """
    following = next_cron_ms(cron, virtual)
    real_next = real + round((following - virtual) * time_scale)
    if real_next <= now:  # behind: jump the cron clock to "now" and take the next tick
        virtual_now = virtual + round((now - real) / time_scale)
        following = next_cron_ms(cron, virtual_now)
        real_next = real + round((following - virtual) * time_scale)
        real_next = max(real_next, now + 1)
    return following, real_next


class Scheduler:
    """Runs the delivery loop until `stop()`; at most `MAX_PARALLEL` attempts at once."""

    def __init__(self, store: QStashStore, signing_key: str, time_scale: float) -> None:
        self.store = store
        self.signing_key = signing_key
        self.time_scale = time_scale
        self._wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._active: dict[str, int] = {}  # flow-control key -> attempts in flight
        # Set by the server: publishes one run of a schedule (it knows URL groups).
        self.fire_schedule: Callable[[dict[str, Any]], Awaitable[None]] | None = None

    def active(self, key: str) -> int:
        """Attempts in flight for a flow-control key."""
        return self._active.get(key, 0)

    def wake(self) -> None:
        """Called after a publish so a due-now message leaves without waiting for a poll."""
        self._wake.set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        resumed = await self.store.requeue_inflight(now_ms())
        if resumed:
            log.info("qstash: resuming %d interrupted deliveries", resumed)
        self._loop_task = asyncio.create_task(self._run(), name="qstash-scheduler")

    async def stop(self) -> None:
        tasks = [t for t in (self._loop_task, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()

    def scaled_ms(self, seconds: float) -> int:
        return round(seconds * self.time_scale * 1000)

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before the tick: a wake during it is not lost
            try:
                await self._fire_schedules()
                hint = await self._tick()
                now = now_ms()
                waits = [MAX_POLL_S]
                for at in (
                    hint,
                    await self.store.next_due_ms(after_ms=now),
                    await self.store.next_schedule_ms(),
                ):
                    if at is not None:
                        waits.append(max(0.0, (at - now) / 1000))
                timeout = min(waits)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarting: keep the loop alive, slowly
                log.warning("qstash scheduler: %s: %s", type(exc).__name__, exc)
                timeout = MAX_POLL_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(timeout, 0.001))

    async def _admit(self, message: Message, now: int) -> tuple[bool, int | None]:
        """Flow control: (may start now, when a rate slot frees if the rate is the limit).

        Over the key's parallelism or rate, a message waits (it stays due); it is never
        dropped. A finishing attempt wakes the loop, so a parallelism slot is reused at once.
        """
        key = message.flow_key
        if key is None:
            return True, None
        if message.flow_parallelism is not None and self.active(key) >= message.flow_parallelism:
            return False, None
        if message.flow_rate is not None:
            period_ms = max(1, self.scaled_ms(message.flow_period_s or 1))
            starts = await self.store.rate_starts(key, now - period_ms + 1)
            if len(starts) >= message.flow_rate:
                return False, starts[len(starts) - message.flow_rate] + period_ms
        return True, None

    async def _tick(self) -> int | None:
        """Starts what may start; returns when a rate-limited message may pass, if any."""
        room = MAX_PARALLEL - len(self._tasks)
        if room <= 0:
            return None
        hint: int | None = None
        now = now_ms()
        for message_id in await self.store.due(now, SCAN_LIMIT):
            if room <= 0:
                break
            if message_id in self._tasks:
                continue
            message = await self.store.get(message_id)
            if message is None:  # cancelled meanwhile
                await self.store.cancel(message_id)
                continue
            allowed, retry_at = await self._admit(message, now)
            if not allowed:
                if retry_at is not None:
                    hint = retry_at if hint is None else min(hint, retry_at)
                continue
            timeout = message.timeout_s or DEFAULT_TIMEOUT_S
            await self.store.start_attempt(
                message,
                now_ms() + int(timeout * 1000) + 5000,
                now_ms=now_ms(),
                attempt_id=new_id("att"),
            )
            if message.flow_key is not None:
                self._active[message.flow_key] = self.active(message.flow_key) + 1
            task = asyncio.create_task(self._attempt(message, timeout))
            self._tasks[message_id] = task
            task.add_done_callback(self._forget)
            room -= 1
        return hint

    async def _fire_schedules(self) -> None:
        """Publishes every schedule whose next run is due, then books its following run."""
        if self.fire_schedule is None:
            return
        for schedule_id in await self.store.due_schedules(now_ms()):
            schedule = await self.store.get_schedule(schedule_id)
            if schedule is None:
                await self.store.delete_schedule(schedule_id)
                continue
            if schedule.get("isPaused"):
                await self.store.put_schedule(schedule, None)
                continue
            at = now_ms()
            previous_virtual = int(schedule["virtualNext"])
            virtual_next, real_next = following_run(
                str(schedule["cron"]),
                virtual=previous_virtual,
                real=int(schedule["nextScheduleTime"]),
                now=at,
                time_scale=self.time_scale,
            )
            run: dict[str, Any] = {"lastScheduleTime": at, "error": None}
            try:
                await self.fire_schedule(schedule)
                run["lastScheduleStates"] = schedule.get("lastScheduleStates", {})
            except Exception as exc:  # a deleted URL group, say: record it, keep the schedule
                run["error"] = str(exc)[:300]
            timing = {"previousVirtual": previous_virtual, "virtualNext": virtual_next}
            await self.store.record_run(schedule_id, run, timing, real_next)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for message_id, known in list(self._tasks.items()):
            if known is task:
                del self._tasks[message_id]

    async def _send(self, message: Message, timeout: float) -> Outcome:
        body = message.body
        claims = delivery_claims(message.url, body, now=time.time(), jwt_id=new_id("jwt"))
        headers = {
            **message.headers,
            "Upstash-Signature": sign_jwt(claims, self.signing_key),
            "Upstash-Message-Id": message.id,
            "Upstash-Retried": str(message.retried),
            **({"Upstash-Schedule-Id": message.schedule_id} if message.schedule_id else {}),
            "User-Agent": USER_AGENT,
        }
        assert self._session is not None
        try:
            async with self._session.request(
                message.method,
                message.url,
                data=body if message.method != "GET" else None,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                data = await response.read()
                lowered = {k.lower(): v for k, v in response.headers.items()}
                return Outcome(response.status, lowered, data)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.info("qstash: %s %s failed: %s", message.id, message.url, type(exc).__name__)
            return Outcome(0, {}, b"")

    async def _attempt(self, message: Message, timeout: float) -> None:
        try:
            await self._attempt_once(message, timeout)
        finally:
            if message.flow_key is not None:
                self._active[message.flow_key] = max(0, self.active(message.flow_key) - 1)
            self._wake.set()

    async def _attempt_once(self, message: Message, timeout: float) -> None:
        outcome = await self._send(message, timeout)
        result = message.evolve(
            last_status=outcome.status,
            last_headers=outcome.headers,
            last_body_b64=base64.b64encode(outcome.body).decode("ascii"),
        )
        log.info("qstash: %s -> %s (retried=%d)", message.id, outcome.status, message.retried)
        if outcome.ok:
            follow = self._callback(result, outcome, success=True)
            await self.store.finish(result, follow_ups=follow, dlq_id=None, now_ms=now_ms())
        elif outcome.non_retryable or message.retried >= message.max_retries:
            dlq_id = new_id("dlq") if message.kind == "message" else None
            follow = self._callback(result, outcome, success=False, dlq_id=dlq_id)
            await self.store.finish(
                result,
                follow_ups=follow,
                dlq_id=dlq_id,
                now_ms=now_ms(),
                delivered=False,
                error=outcome.error,
            )
        else:
            failed = result.evolve(retried=message.retried + 1)
            wait = next_wait_s(failed, outcome.headers.get("retry-after"))
            at = now_ms()
            await self.store.reschedule(
                failed, at + self.scaled_ms(wait), now_ms=at, error=outcome.error
            )

    def _callback(
        self, message: Message, outcome: Outcome, *, success: bool, dlq_id: str | None = None
    ) -> list[Message]:
        """The callback (or failure-callback) delivery describing `outcome`, if one is set."""
        target = message.callback if success else message.failure_callback
        if message.kind != "message" or target is None:
            return []
        payload: dict[str, object] = {
            "status": outcome.status,
            "header": {k: [v] for k, v in outcome.headers.items()},
            "body": base64.b64encode(outcome.body).decode("ascii"),
            "retried": message.retried,
            "maxRetries": message.max_retries,
            "sourceMessageId": message.id,
            "url": message.url,
            "method": message.method,
            "sourceHeader": {k: [v] for k, v in message.headers.items()},
            "sourceBody": message.body_b64,
            "notBefore": message.not_before,
            "createdAt": message.created_at,
        }
        if dlq_id is not None:
            payload["dlqId"] = dlq_id
        at = now_ms()
        return [
            Message(
                id=new_id("msg"),
                url=target,
                method="POST",
                body_b64=base64.b64encode(json.dumps(payload).encode()).decode("ascii"),
                headers={"Content-Type": "application/json"},
                max_retries=message.max_retries,
                created_at=at,
                not_before=at,
                kind="callback" if success else "failure-callback",
            )
        ]
