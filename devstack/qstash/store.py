"""The local QStash's state in the devstack's Redis, so `--data-dir` keeps it across restarts.

{prefix}msg:{id}        JSON of a pending `Message`
{prefix}due             sorted set: message id -> unix ms of its next attempt
{prefix}inflight        set: ids whose attempt started (re-queued at start-up)
{prefix}dedup:{key}     message id, 10-minute TTL
{prefix}dlq             sorted set: dlq id -> unix ms it arrived
{prefix}dlq:{dlqId}     JSON of the DLQ entry (the message and its last response)
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from devstack.qstash.model import Message

PREFIX = "devstack:qstash:"
DEDUP_TTL_SECONDS = 600


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

    async def enqueue(self, *messages: Message) -> None:
        """Stores messages and schedules their first attempt, all or nothing."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for message in messages:
                pipe.set(self._msg(message.id), message.to_json())
                pipe.zadd(f"{self.p}due", {message.id: message.not_before})
            await pipe.execute()

    async def get(self, message_id: str) -> Message | None:
        text = await self.redis.get(self._msg(message_id))
        return Message.from_json(str(text)) if text else None

    async def due(self, now_ms: int, limit: int) -> list[str]:
        ids = await self.redis.zrangebyscore(f"{self.p}due", "-inf", now_ms, start=0, num=limit)
        return [str(i) for i in ids]

    async def next_due_ms(self) -> int | None:
        first = await self.redis.zrange(f"{self.p}due", 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    async def start_attempt(self, message_id: str, lease_until_ms: int) -> None:
        """Marks an attempt in flight; the lease keeps the scheduler from picking it again."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(f"{self.p}due", {message_id: lease_until_ms}, xx=True)
            pipe.sadd(f"{self.p}inflight", message_id)
            await pipe.execute()

    async def requeue_inflight(self, now_ms: int) -> int:
        """At start-up: attempts cut short by a stop run again now (at-least-once)."""
        ids = await self.redis.smembers(f"{self.p}inflight")
        async with self.redis.pipeline(transaction=True) as pipe:
            for message_id in ids:
                pipe.zadd(f"{self.p}due", {str(message_id): now_ms}, xx=True)
            pipe.delete(f"{self.p}inflight")
            await pipe.execute()
        return len(ids)

    async def reschedule(self, message: Message, at_ms: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._msg(message.id), message.to_json())
            pipe.zadd(f"{self.p}due", {message.id: at_ms})
            pipe.srem(f"{self.p}inflight", message.id)
            await pipe.execute()

    async def finish(
        self, message: Message, *, follow_ups: list[Message], dlq_id: str | None, now_ms: int
    ) -> None:
        """Removes a finished message, adds its callbacks, and its DLQ entry if it failed."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._msg(message.id))
            pipe.zrem(f"{self.p}due", message.id)
            pipe.srem(f"{self.p}inflight", message.id)
            if dlq_id is not None:
                entry = {"dlqId": dlq_id, "message": json.loads(message.to_json())}
                pipe.set(f"{self.p}dlq:{dlq_id}", json.dumps(entry))
                pipe.zadd(f"{self.p}dlq", {dlq_id: now_ms})
            for follow in follow_ups:
                pipe.set(self._msg(follow.id), follow.to_json())
                pipe.zadd(f"{self.p}due", {follow.id: follow.not_before})
            await pipe.execute()

    async def cancel(self, message_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._msg(message_id))
            pipe.zrem(f"{self.p}due", message_id)
            pipe.srem(f"{self.p}inflight", message_id)
            deleted, _, _ = await pipe.execute()
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
