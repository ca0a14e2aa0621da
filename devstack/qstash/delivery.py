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
from dataclasses import dataclass

import aiohttp

from devstack.qstash.model import Message, next_wait_s
from devstack.qstash.store import QStashStore
from shared.qstash.signing import delivery_claims, sign_jwt

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
MAX_PARALLEL = 64
MAX_POLL_S = 0.5
USER_AGENT = "Upstash-QStash"


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


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
    def non_retryable(self) -> bool:
        flag = self.headers.get("upstash-nonretryable-error", "").lower() == "true"
        return self.status == 489 and flag


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
            try:
                await self._tick()
                timeout = MAX_POLL_S
                next_at = await self.store.next_due_ms()
                if next_at is not None:
                    timeout = min(MAX_POLL_S, max(0.0, (next_at - now_ms()) / 1000))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarting: keep the loop alive, slowly
                log.warning("qstash scheduler: %s: %s", type(exc).__name__, exc)
                timeout = MAX_POLL_S
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(timeout, 0.001))

    async def _tick(self) -> None:
        room = MAX_PARALLEL - len(self._tasks)
        if room <= 0:
            return
        for message_id in await self.store.due(now_ms(), room):
            if message_id in self._tasks:
                continue
            message = await self.store.get(message_id)
            if message is None:  # cancelled meanwhile
                await self.store.cancel(message_id)
                continue
            timeout = message.timeout_s or DEFAULT_TIMEOUT_S
            await self.store.start_attempt(message_id, now_ms() + int(timeout * 1000) + 5000)
            task = asyncio.create_task(self._attempt(message, timeout))
            self._tasks[message_id] = task
            task.add_done_callback(self._forget)

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
            await self.store.finish(result, follow_ups=follow, dlq_id=dlq_id, now_ms=now_ms())
        else:
            failed = result.evolve(retried=message.retried + 1)
            wait = next_wait_s(failed, outcome.headers.get("retry-after"))
            await self.store.reschedule(failed, now_ms() + self.scaled_ms(wait))
        self._wake.set()

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
