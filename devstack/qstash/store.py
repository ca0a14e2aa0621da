"""The local QStash's state in the devstack's Redis, so `--data-dir` keeps it across restarts.

{prefix}msg:{id}        JSON of a pending `Message`
{prefix}due             sorted set: message id -> unix ms of its next attempt
{prefix}inflight        set: ids whose attempt started (re-queued at start-up)
{prefix}dedup:{key}     message id, 10-minute TTL
{prefix}dlq             sorted set: dlq id -> unix ms it arrived
{prefix}dlq:{dlqId}     JSON of the DLQ entry (the message and its last response)
{prefix}events          list of JSON log events, newest first (capped at MAX_EVENTS)
{prefix}fcl:{key}       JSON: the flow-control limits the key's latest message carried
{prefix}fcm:{key}       set: pending message ids with that flow-control key (the due ones
                        not in flight are its wait list)
{prefix}fcs:{key}       sorted set: attempt id -> unix ms it started (the rate window)
{prefix}sched:{id}      JSON of a schedule
{prefix}schedules       sorted set: schedule id -> unix ms of its next run (real time)
{prefix}topic:{name}    JSON of a URL group {name, createdAt, updatedAt, endpoints}
{prefix}topics          set of URL group names
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from devstack.qstash.model import Message

PREFIX = "devstack:qstash:"
DEDUP_TTL_SECONDS = 600
MAX_EVENTS = 10_000
RATE_STARTS_KEPT_MS = 86_400_000  # a flow-control key's starts are kept at least this long


def event_of(message: Message, state: str, at_ms: int, **extra: object) -> dict[str, object]:
    """One log event in the shape of QStash's `GET /v2/events`."""
    event: dict[str, object] = {
        "time": at_ms,
        "messageId": message.id,
        "state": state,
        "url": message.url,
        "method": message.method,
        "maxRetries": message.max_retries,
    }
    for key, value in (
        ("topicName", message.topic_name),
        ("endpointName", message.endpoint_name),
        ("scheduleId", message.schedule_id),
        ("flowControlKey", message.flow_key),
        ("label", message.label),
    ):
        if value is not None:
            event[key] = value
    event.update({k: v for k, v in extra.items() if v is not None})
    return event


class QStashStore:
    """Every read and write of QStash state; each state change is one MULTI/EXEC."""

    def __init__(self, redis_url: str, prefix: str = PREFIX) -> None:
        self.redis: aioredis.Redis = aioredis.from_url(redis_url, decode_responses=True)
        self.p = prefix

    async def close(self) -> None:
        await self.redis.aclose()

    def _msg(self, message_id: str) -> str:
        return f"{self.p}msg:{message_id}"

    async def claim_dedup(self, key: str, message_id: str) -> str | None:
        """None when `key` is new (now owned by `message_id`), else the original message id."""
        name = f"{self.p}dedup:{key}"
        if await self.redis.set(name, message_id, nx=True, ex=DEDUP_TTL_SECONDS):
            return None
        existing = await self.redis.get(name)
        return str(existing) if existing else None

    def _log(self, pipe: Any, *events: dict[str, object]) -> None:
        for event in events:
            pipe.lpush(f"{self.p}events", json.dumps(event))
        if events:
            pipe.ltrim(f"{self.p}events", 0, MAX_EVENTS - 1)

    def _store_new(self, pipe: Any, message: Message, at_ms: int) -> None:
        pipe.set(self._msg(message.id), message.to_json())
        pipe.zadd(f"{self.p}due", {message.id: message.not_before})
        if message.flow_key is not None:
            limits = {
                "rate": message.flow_rate,
                "period": message.flow_period_s,
                "parallelism": message.flow_parallelism,
            }
            pipe.set(f"{self.p}fcl:{message.flow_key}", json.dumps(limits))
            pipe.sadd(f"{self.p}fcm:{message.flow_key}", message.id)
        self._log(pipe, event_of(message, "CREATED", at_ms))

    def _drop(self, pipe: Any, message: Message) -> None:
        pipe.delete(self._msg(message.id))
        pipe.zrem(f"{self.p}due", message.id)
        pipe.srem(f"{self.p}inflight", message.id)
        if message.flow_key is not None:
            pipe.srem(f"{self.p}fcm:{message.flow_key}", message.id)

    async def enqueue(self, *messages: Message, at_ms: int | None = None) -> None:
        """Stores messages and schedules their first attempt, all or nothing."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for message in messages:
                self._store_new(pipe, message, at_ms or message.created_at)
            await pipe.execute()

    async def get(self, message_id: str) -> Message | None:
        text = await self.redis.get(self._msg(message_id))
        return Message.from_json(str(text)) if text else None

    async def due(self, now_ms: int, limit: int, offset: int = 0) -> list[str]:
        """Ids due by `now_ms`, earliest first: `limit` of them from position `offset`."""
        ids = await self.redis.zrangebyscore(
            f"{self.p}due", "-inf", now_ms, start=offset, num=limit
        )
        return [str(i) for i in ids]

    async def next_due_ms(self, after_ms: int | None = None) -> int | None:
        """The earliest scheduled attempt (after `after_ms` when given: flow control can
        hold messages that are already due, and those must not make the loop spin)."""
        if after_ms is None:
            first = await self.redis.zrange(f"{self.p}due", 0, 0, withscores=True)
        else:
            first = await self.redis.zrangebyscore(
                f"{self.p}due", f"({after_ms}", "+inf", start=0, num=1, withscores=True
            )
        return int(first[0][1]) if first else None

    async def start_attempt(
        self,
        message: Message,
        lease_until_ms: int,
        *,
        now_ms: int,
        attempt_id: str,
        window_ms: int = RATE_STARTS_KEPT_MS,
    ) -> None:
        """Marks an attempt in flight; the lease keeps the scheduler from picking it again.

        A rate-limited key's starts are kept for `window_ms` (its period, as the scheduler
        scales it) and at least a day, so a period over a day still counts every start."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(f"{self.p}due", {message.id: lease_until_ms}, xx=True)
            pipe.sadd(f"{self.p}inflight", message.id)
            if message.flow_key is not None and message.flow_rate is not None:
                starts = f"{self.p}fcs:{message.flow_key}"
                pipe.zadd(starts, {attempt_id: now_ms})
                kept = max(window_ms, RATE_STARTS_KEPT_MS)
                pipe.zremrangebyscore(starts, "-inf", now_ms - kept)
            self._log(pipe, event_of(message, "ACTIVE", now_ms))
            await pipe.execute()

    async def rate_starts(self, key: str, since_ms: int) -> list[int]:
        """Start times (unix ms, oldest first) of the key's attempts since `since_ms`."""
        pairs = await self.redis.zrangebyscore(
            f"{self.p}fcs:{key}", since_ms, "+inf", withscores=True
        )
        return [int(score) for _, score in pairs]

    async def flow_keys(self) -> list[str]:
        """Every flow-control key a message was published with."""
        prefix = f"{self.p}fcl:"
        return sorted(
            [str(name)[len(prefix) :] async for name in self.redis.scan_iter(match=f"{prefix}*")]
        )

    async def flow_info(self, key: str, now_ms: int) -> tuple[dict[str, Any] | None, int]:
        """(the key's latest limits or None if unknown, its wait list: the pending messages
        due by `now_ms` and not in flight). A message not yet due (its delay, not-before or
        retry backoff) waits for its own time, not for a flow-control slot: not counted."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(f"{self.p}fcl:{key}")
            pipe.smembers(f"{self.p}fcm:{key}")
            limits, members = await pipe.execute()
        ids = [str(m) for m in members]
        waiting = 0
        if ids:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zmscore(f"{self.p}due", ids)
                pipe.smismember(f"{self.p}inflight", ids)
                scores, flying = await pipe.execute()
            waiting = sum(
                1
                for score, busy in zip(scores, flying, strict=True)
                if score is not None and score <= now_ms and not busy
            )
        return (json.loads(limits) if limits else None), waiting

    async def requeue_inflight(self, now_ms: int) -> int:
        """At start-up: attempts cut short by a stop run again now (at-least-once)."""
        ids = await self.redis.smembers(f"{self.p}inflight")
        async with self.redis.pipeline(transaction=True) as pipe:
            for message_id in ids:
                pipe.zadd(f"{self.p}due", {str(message_id): now_ms}, xx=True)
            pipe.delete(f"{self.p}inflight")
            await pipe.execute()
        return len(ids)

    async def _still_pending(self, pipe: Any, message_id: str) -> bool:
        """Under WATCH of the message: False when it was cancelled while its attempt ran
        (the attempt's outcome is then logged, but never revives or dead-letters it)."""
        await pipe.watch(self._msg(message_id))
        return bool(await pipe.exists(self._msg(message_id)))

    async def reschedule(
        self, message: Message, at_ms: int, *, now_ms: int = 0, error: str | None = None
    ) -> None:
        status = message.last_status or None
        failed = event_of(message, "ERROR", now_ms, error=error, responseStatus=status)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pending = await self._still_pending(pipe, message.id)
                    pipe.multi()
                    pipe.srem(f"{self.p}inflight", message.id)
                    if not pending:
                        self._log(pipe, failed)
                    else:
                        pipe.set(self._msg(message.id), message.to_json())
                        pipe.zadd(f"{self.p}due", {message.id: at_ms})
                        self._log(
                            pipe, failed, event_of(message, "RETRY", now_ms, nextDeliveryTime=at_ms)
                        )
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def finish(
        self,
        message: Message,
        *,
        follow_ups: list[Message],
        dlq_id: str | None,
        now_ms: int,
        delivered: bool = True,
        error: str | None = None,
    ) -> None:
        """Removes a finished message, adds its callbacks, and its DLQ entry if it failed.

        A message cancelled while this attempt ran gets only the attempt's outcome in its
        log: no FAILED, no dead letter, no failure callback."""
        status = message.last_status or None
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pending = await self._still_pending(pipe, message.id)
                    pipe.multi()
                    self._drop(pipe, message)
                    if delivered:
                        self._log(
                            pipe, event_of(message, "DELIVERED", now_ms, responseStatus=status)
                        )
                    else:
                        self._log(
                            pipe,
                            event_of(message, "ERROR", now_ms, error=error, responseStatus=status),
                        )
                    if pending and not delivered:
                        if dlq_id is not None:
                            entry = {"dlqId": dlq_id, "message": json.loads(message.to_json())}
                            pipe.set(f"{self.p}dlq:{dlq_id}", json.dumps(entry))
                            pipe.zadd(f"{self.p}dlq", {dlq_id: now_ms})
                        self._log(
                            pipe,
                            event_of(message, "FAILED", now_ms, error=error, responseStatus=status),
                        )
                    for follow in follow_ups if pending or delivered else ():
                        self._store_new(pipe, follow, now_ms)
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def cancel(self, message_id: str, *, now_ms: int = 0) -> bool:
        message = await self.get(message_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._msg(message_id))
            pipe.zrem(f"{self.p}due", message_id)
            pipe.srem(f"{self.p}inflight", message_id)
            if message is not None:
                self._drop(pipe, message)
                self._log(
                    pipe,
                    event_of(message, "CANCEL_REQUESTED", now_ms),
                    event_of(message, "CANCELED", now_ms),
                )
            deleted = (await pipe.execute())[0]
        return bool(deleted)

    async def events(self, message_id: str | None, state: str | None) -> list[dict[str, Any]]:
        """Log events, newest first, optionally of one message or in one state."""
        found = []
        for text in await self.redis.lrange(f"{self.p}events", 0, -1):
            event: dict[str, Any] = json.loads(str(text))
            if message_id is not None and event.get("messageId") != message_id:
                continue
            if state is not None and event.get("state") != state:
                continue
            found.append(event)
        return found

    # ---------------------------------------------------------------- schedules

    async def put_schedule(self, schedule: dict[str, Any], next_ms: int | None) -> None:
        sid = str(schedule["scheduleId"])
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{self.p}sched:{sid}", json.dumps(schedule))
            if next_ms is None:
                pipe.zrem(f"{self.p}schedules", sid)
            else:
                pipe.zadd(f"{self.p}schedules", {sid: next_ms})
            await pipe.execute()

    async def record_run(
        self, schedule_id: str, run: dict[str, Any], timing: dict[str, Any], next_ms: int
    ) -> None:
        """After a run: merges `run` (last run facts) and, unless the schedule was replaced
        meanwhile, `timing` (its next run) into the STORED schedule. A schedule deleted or
        paused while it fired stays deleted or paused (optimistic WATCH, retried)."""
        key = f"{self.p}sched:{schedule_id}"
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    text = await pipe.get(key)
                    if not text:
                        await pipe.unwatch()
                        return
                    current: dict[str, Any] = json.loads(str(text))
                    current.update(run)
                    if current.get("virtualNext") == timing.get("previousVirtual"):
                        current["virtualNext"] = timing["virtualNext"]
                        current["nextScheduleTime"] = next_ms
                    pipe.multi()
                    pipe.set(key, json.dumps(current))
                    if current.get("isPaused"):
                        pipe.zrem(f"{self.p}schedules", schedule_id)
                    else:
                        pipe.zadd(
                            f"{self.p}schedules", {schedule_id: int(current["nextScheduleTime"])}
                        )
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def get_schedule(self, schedule_id: str) -> dict[str, Any] | None:
        text = await self.redis.get(f"{self.p}sched:{schedule_id}")
        if not text:
            return None
        schedule: dict[str, Any] = json.loads(str(text))
        return schedule

    async def list_schedules(self) -> list[dict[str, Any]]:
        found = []
        async for name in self.redis.scan_iter(match=f"{self.p}sched:*", count=500):
            schedule = await self.get_schedule(str(name)[len(f"{self.p}sched:") :])
            if schedule is not None:
                found.append(schedule)
        return sorted(found, key=lambda s: (s.get("createdAt", 0), s["scheduleId"]))

    async def delete_schedule(self, schedule_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(f"{self.p}sched:{schedule_id}")
            pipe.zrem(f"{self.p}schedules", schedule_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def due_schedules(self, now_ms: int, limit: int = 100) -> list[str]:
        ids = await self.redis.zrangebyscore(
            f"{self.p}schedules", "-inf", now_ms, start=0, num=limit
        )
        return [str(i) for i in ids]

    async def next_schedule_ms(self) -> int | None:
        first = await self.redis.zrange(f"{self.p}schedules", 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    # ---------------------------------------------------------------- URL groups

    async def put_topic(self, topic: dict[str, Any]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{self.p}topic:{topic['name']}", json.dumps(topic))
            pipe.sadd(f"{self.p}topics", str(topic["name"]))
            await pipe.execute()

    async def get_topic(self, name: str) -> dict[str, Any] | None:
        text = await self.redis.get(f"{self.p}topic:{name}")
        if not text:
            return None
        topic: dict[str, Any] = json.loads(str(text))
        return topic

    async def list_topics(self) -> list[dict[str, Any]]:
        found = []
        for name in sorted(await self.redis.smembers(f"{self.p}topics")):
            topic = await self.get_topic(str(name))
            if topic is not None:
                found.append(topic)
        return found

    async def delete_topic(self, name: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(f"{self.p}topic:{name}")
            pipe.srem(f"{self.p}topics", name)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def dlq_list(self, cursor: int, count: int) -> tuple[list[dict[str, Any]], int | None]:
        ids = await self.redis.zrange(f"{self.p}dlq", cursor, cursor + count - 1)
        entries = []
        for dlq_id in ids:
            entry = await self.dlq_get(str(dlq_id))
            if entry is not None:
                entries.append(entry)
        more = await self.redis.zcard(f"{self.p}dlq") > cursor + count
        return entries, (cursor + count if more else None)

    async def dlq_get(self, dlq_id: str) -> dict[str, Any] | None:
        text = await self.redis.get(f"{self.p}dlq:{dlq_id}")
        if not text:
            return None
        entry: dict[str, Any] = json.loads(str(text))
        return entry

    async def dlq_delete(self, dlq_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(f"{self.p}dlq:{dlq_id}")
            pipe.zrem(f"{self.p}dlq", dlq_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)
